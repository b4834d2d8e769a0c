//! Generated GraphQL documents through the validator and the executor:
//! documents built from the served schema's own types, fields, arguments
//! and enums, with aliases, directives, variables, inline fragments, and
//! named fragments spread into each other (chains that fan out included,
//! the shape whose work doubles with each fragment), plus wrong types and
//! unknown names. No document may take more than 50 ms of parse and
//! validation time, panic, or stop the server answering.
//!
//! Short in the suite; longer:
//! `CONVTRACK_FUZZ_SECONDS=300 cargo test --release --test api fuzz_documents -- --nocapture`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::Response;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextRequest,
};
use async_graphql::parser::types::{BaseType, TypeKind, TypeSystemDefinition};

use convtrack::domain::rate_limit::{Budget, RateLimiter};
use convtrack::graphql::RequestContext;

use crate::fuzz::{Rng, budget};
use crate::helpers::*;

/// Most time one document may take before it executes (parse, limits,
/// validation).
const VALIDATION_BUDGET: Duration = Duration::from_millis(50);

/// Measures the time a request spends before execution: parsing, the
/// document limits and validation (the whole request when it never runs).
#[derive(Clone, Default)]
struct Stopwatch(Arc<Mutex<(Option<Instant>, Option<Duration>)>>);

impl Stopwatch {
    fn reset(&self) {
        *self.0.lock().expect("lock") = (None, None);
    }

    /// Notes the time since the request started, once.
    fn lap(&self) {
        let mut state = self.0.lock().expect("lock");
        if let (Some(started), None) = *state {
            state.1 = Some(started.elapsed());
        }
    }

    fn before_execution(&self) -> Duration {
        self.0.lock().expect("lock").1.unwrap_or_default()
    }
}

impl ExtensionFactory for Stopwatch {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Stopwatch {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        self.0.lock().expect("lock").0 = Some(Instant::now());
        let response = next.run(ctx).await;
        self.lap();
        response
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.lap();
        next.run(ctx, operation_name).await
    }
}

/// A field of an output type: its name, argument (name, type) pairs, and
/// the named type it returns.
#[derive(Debug, Clone)]
struct FieldShape {
    name: String,
    arguments: Vec<(String, TypeShape)>,
    returns: String,
}

#[derive(Debug, Clone)]
struct TypeShape {
    named: String,
    list: bool,
    required: bool,
}

/// The served schema's types, read from its SDL.
#[derive(Default)]
struct Catalogue {
    /// Object and interface types with their fields.
    outputs: HashMap<String, Vec<FieldShape>>,
    /// Union and interface members.
    possible: HashMap<String, Vec<String>>,
    enums: HashMap<String, Vec<String>>,
    inputs: HashMap<String, Vec<(String, TypeShape)>>,
}

fn shape_of(ty: &async_graphql::parser::types::Type) -> TypeShape {
    match &ty.base {
        BaseType::Named(name) => TypeShape {
            named: name.to_string(),
            list: false,
            required: !ty.nullable,
        },
        BaseType::List(inner) => TypeShape {
            list: true,
            required: !ty.nullable,
            ..shape_of(inner)
        },
    }
}

impl Catalogue {
    fn read(sdl: &str) -> Self {
        let document = async_graphql::parser::parse_schema(sdl).expect("the SDL parses");
        let mut catalogue = Catalogue::default();
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let name = ty.node.name.node.to_string();
            let fields = |fields: &[async_graphql::Positioned<
                async_graphql::parser::types::FieldDefinition,
            >]| {
                fields
                    .iter()
                    .map(|f| FieldShape {
                        name: f.node.name.node.to_string(),
                        arguments: f
                            .node
                            .arguments
                            .iter()
                            .map(|a| (a.node.name.node.to_string(), shape_of(&a.node.ty.node)))
                            .collect(),
                        returns: shape_of(&f.node.ty.node).named,
                    })
                    .collect::<Vec<_>>()
            };
            match ty.node.kind {
                TypeKind::Object(o) => {
                    for interface in &o.implements {
                        catalogue
                            .possible
                            .entry(interface.node.to_string())
                            .or_default()
                            .push(name.clone());
                    }
                    catalogue.outputs.insert(name, fields(&o.fields));
                }
                TypeKind::Interface(i) => {
                    catalogue.outputs.insert(name, fields(&i.fields));
                }
                TypeKind::Union(u) => {
                    catalogue
                        .possible
                        .insert(name, u.members.iter().map(|m| m.node.to_string()).collect());
                }
                TypeKind::Enum(e) => {
                    catalogue.enums.insert(
                        name,
                        e.values
                            .iter()
                            .map(|v| v.node.value.node.to_string())
                            .collect(),
                    );
                }
                TypeKind::InputObject(i) => {
                    catalogue.inputs.insert(
                        name,
                        i.fields
                            .iter()
                            .map(|f| (f.node.name.node.to_string(), shape_of(&f.node.ty.node)))
                            .collect(),
                    );
                }
                TypeKind::Scalar => {}
            }
        }
        catalogue
    }
}

/// Builds one document at a time.
struct Generator<'a> {
    catalogue: &'a Catalogue,
    rng: Rng,
    fragments: Vec<(String, String)>,
    aliases: usize,
}

const STRINGS: [&str; 8] = [
    "",
    "x",
    "cs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "e1",
    "Q29udmVyc2F0aW9uOjE",
    "ünï©ødé 🎉",
    "%_\\\\'\"",
    "2026-12-05T10:00:00Z",
];

impl Generator<'_> {
    fn chance(&mut self, percent: usize) -> bool {
        self.rng.below(100) < percent
    }

    fn pick<'s>(&mut self, items: &'s [String]) -> Option<&'s String> {
        (!items.is_empty()).then(|| &items[self.rng.below(items.len())])
    }

    fn value(&mut self, ty: &TypeShape, depth: usize) -> String {
        if self.chance(3) {
            return "null".to_owned();
        }
        if ty.list && self.chance(70) {
            let single = TypeShape {
                list: false,
                ..ty.clone()
            };
            let items: Vec<String> = (0..self.rng.below(4))
                .map(|_| self.value(&single, depth))
                .collect();
            return format!("[{}]", items.join(", "));
        }
        // A value of the wrong kind now and then, for the validator.
        let named = if self.chance(5) {
            "String"
        } else {
            ty.named.as_str()
        };
        if let Some(values) = self.catalogue.enums.get(named) {
            return self.pick(values).cloned().unwrap_or_default();
        }
        if let Some(fields) = self.catalogue.inputs.get(named) {
            if depth > 3 {
                return "{}".to_owned();
            }
            let mut chosen = Vec::new();
            for (name, ty) in fields {
                if ty.required || self.rng.below(2) == 0 {
                    chosen.push(format!("{name}: {}", self.value(ty, depth + 1)));
                }
            }
            return format!("{{ {} }}", chosen.join(", "));
        }
        match named {
            "Int" => match self.rng.below(4) {
                0 => "0".to_owned(),
                1 => "-1".to_owned(),
                2 => "2147483647".to_owned(),
                _ => (self.rng.below(300)).to_string(),
            },
            "Float" => "0.5".to_owned(),
            "Boolean" => if self.chance(50) { "true" } else { "false" }.to_owned(),
            _ => format!("{:?}", STRINGS[self.rng.below(STRINGS.len())]),
        }
    }

    fn selection_set(&mut self, on: &str, depth: usize) -> String {
        let mut items = Vec::new();
        let width = 1 + self.rng.below(4);
        for _ in 0..width {
            let roll = self.rng.below(100);
            if roll < 10 && !self.fragments.is_empty() {
                let (name, _) = self.fragments[self.rng.below(self.fragments.len())].clone();
                for _ in 0..1 + self.rng.below(3) {
                    items.push(format!("...{name}"));
                }
                continue;
            }
            if roll < 15
                && let Some(members) = self.catalogue.possible.get(on).cloned()
                && let Some(member) = self.pick(&members).cloned()
            {
                items.push(format!(
                    "... on {member} {}",
                    self.selection_set(&member, depth + 1)
                ));
                continue;
            }
            let Some(fields) = self.catalogue.outputs.get(on) else {
                items.push("__typename".to_owned());
                continue;
            };
            let field = fields[self.rng.below(fields.len())].clone();
            let mut text = String::new();
            if self.chance(10) {
                self.aliases += 1;
                text.push_str(&format!("a{}: ", self.aliases));
            }
            text.push_str(&field.name);
            let must = field.arguments.iter().any(|(_, ty)| ty.required);
            if !field.arguments.is_empty() && (must || self.chance(70)) {
                let mut arguments = Vec::new();
                for (name, ty) in &field.arguments {
                    if ty.required || self.rng.below(3) > 0 {
                        arguments.push(format!("{name}: {}", self.value(ty, 0)));
                    }
                }
                if !arguments.is_empty() {
                    text.push_str(&format!("({})", arguments.join(", ")));
                }
            }
            if self.chance(5) {
                text.push_str(if self.chance(50) {
                    " @include(if: true)"
                } else {
                    " @skip(if: false)"
                });
            }
            let nested = self.catalogue.outputs.contains_key(&field.returns)
                || self.catalogue.possible.contains_key(&field.returns);
            if nested {
                if depth > 8 {
                    text.push_str(" { __typename }");
                } else {
                    text.push(' ');
                    text.push_str(&self.selection_set(&field.returns, depth + 1));
                }
            }
            items.push(text);
        }
        if self.chance(2) {
            items.push("noSuchField".to_owned());
        }
        format!("{{ {} }}", items.join(" "))
    }

    /// A chain of fragments on `on`, each spreading the next `fanout` times.
    fn chain(&mut self, on: &str, length: usize, fanout: usize) -> (String, String) {
        let mut text = String::new();
        let first = format!("C{}", self.rng.next() % 1_000_000);
        for i in 0..length {
            let spreads = format!("...{first}_{} ", i + 1).repeat(fanout);
            text.push_str(&format!("fragment {first}_{i} on {on} {{ {spreads}}}\n"));
        }
        let leaf = self.selection_set(on, 6);
        text.push_str(&format!("fragment {first}_{length} on {on} {leaf}\n"));
        (format!("{first}_0"), text)
    }

    fn document(&mut self) -> String {
        self.fragments.clear();
        self.aliases = 0;
        let root = if self.chance(85) { "Query" } else { "Mutation" };
        let mut definitions = String::new();
        if self.chance(15) {
            let length = 2 + self.rng.below(30);
            let fanout = 1 + self.rng.below(4);
            let (head, text) = self.chain(root, length, fanout);
            definitions.push_str(&text);
            self.fragments.push((head, root.to_owned()));
        }
        for i in 0..self.rng.below(3) {
            let types: Vec<String> = self.catalogue.outputs.keys().cloned().collect();
            let on = if self.chance(50) {
                root.to_owned()
            } else {
                self.pick(&types)
                    .cloned()
                    .unwrap_or_else(|| root.to_owned())
            };
            let body = self.selection_set(&on, 3);
            definitions.push_str(&format!("fragment F{i} on {on} {body}\n"));
            self.fragments.push((format!("F{i}"), on));
        }
        let operation = root.to_ascii_lowercase();
        let body = self.selection_set(root, 0);
        format!("{operation} Fuzz {body}\n{definitions}")
    }
}

test_both!(
    generated_documents_stay_within_the_validation_budget,
    |app| {
        let sdl = convtrack::graphql::sdl();
        let catalogue = Catalogue::read(&sdl);
        assert!(
            catalogue.outputs.contains_key("Query"),
            "the schema was read"
        );
        let stopwatch = Stopwatch::default();
        let limiter = Arc::new(RateLimiter::<uuid::Uuid>::new(Budget {
            capacity: 1e12,
            per_second: 1e12,
        }));
        let schema = convtrack::graphql::schema_builder()
            .extension(stopwatch.clone())
            .data(limiter)
            .finish();
        let mut generator = Generator {
            catalogue: &catalogue,
            rng: Rng(match app.backend {
                Backend::Sqlite => 0xd0c5,
                Backend::Postgres => 0xd0c6,
            }),
            fragments: Vec::new(),
            aliases: 0,
        };
        let deadline = Instant::now() + budget(Duration::from_secs(3));
        let (mut cases, mut executed) = (0u64, 0u64);
        while Instant::now() < deadline || cases < 100 {
            let document = generator.document();
            // Noise on this machine is not the document's fault: it fails only
            // when three runs in a row are all over the budget.
            let mut fastest = Duration::MAX;
            for _ in 0..3 {
                stopwatch.reset();
                let context = RequestContext::new(app.acme_admin, app.services.clone());
                let response = schema
                    .execute(async_graphql::Request::new(document.as_str()).data(context))
                    .await;
                executed += u64::from(response.data != async_graphql::Value::Null);
                fastest = fastest.min(stopwatch.before_execution());
                if fastest <= VALIDATION_BUDGET {
                    break;
                }
            }
            assert!(
                fastest <= VALIDATION_BUDGET,
                "{fastest:?} of parse and validation for:\n{document}"
            );
            cases += 1;
        }
        assert!(executed > 0, "some documents ran ({cases} cases)");
        if std::env::var("CONVTRACK_FUZZ_SECONDS").is_ok() {
            println!("{cases} documents, {executed} executed");
        }
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
);
