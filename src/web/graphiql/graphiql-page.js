// Starts GraphiQL on this server's API. Queries and mutations go over HTTP,
// subscriptions over the WebSocket on the same path; the Headers pane's
// values (the `Authorization` header with an API key) go with each request
// and into the socket's connection_init. Headers are kept only for the tab
// unless "persist headers" is switched on.
(function () {
  "use strict";
  const url = new URL("/graphql", window.location.href);
  const socketUrl = new URL(url);
  socketUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const fetcher = GraphiQL.createFetcher({
    url: url.href,
    subscriptionUrl: socketUrl.href,
  });
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher,
      // ASCII only: a header value with "…" would make the browser refuse
      // the request before it is sent.
      defaultHeaders: JSON.stringify({ Authorization: "Bearer ctk_YOUR_KEY" }, null, 2),
      defaultEditorToolsVisibility: "headers",
      defaultQuery:
        "# Put an API key in the Headers pane below, then run:\n" +
        "{\n  conversations(first: 5) {\n    nodes { sessionId channel badges { kind } }\n  }\n}\n",
    }),
  );
})();
