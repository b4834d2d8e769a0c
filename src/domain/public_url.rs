//! URLs the server hands to people: call-to-action targets (where `/l/`
//! redirects a visitor) and record URL templates (where a badge links).
//! Only absolute http(s) URLs on a public host: never loopback, private,
//! link-local, metadata or other special-use addresses, however written
//! (`http://2130706433/`, `http://0x7f.1/` and `[::ffff:127.0.0.1]` are
//! all 127.0.0.1 once parsed), never with userinfo
//! (`https://good.example@evil.example/` goes to evil.example), never with
//! control or bidi characters.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::InvalidInput;
use super::text::{is_bidi_control, quoted};

/// Parses `raw` as a public http(s) URL of at most `max_chars` characters,
/// normalised: the host lower-cased and punycoded, everything outside
/// ASCII percent-encoded. `field` names the input in the error message.
pub fn parse(field: &str, raw: &str, max_chars: usize) -> Result<Url, InvalidInput> {
    let raw = raw.trim();
    let refuse = |why: &str| {
        InvalidInput::new(format!(
            "{field} {} {why}; use an absolute http(s) URL on a public host, e.g. https://book.example.com/tour",
            quoted(raw)
        ))
    };
    if raw.chars().count() > max_chars {
        return Err(refuse(&format!("is longer than {max_chars} characters")));
    }
    if raw
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_bidi_control(c))
    {
        return Err(refuse("contains whitespace, control or bidi characters"));
    }
    // The URL parser forgives `https:/x`, `https:x` and `https:\\x`; a
    // target must spell its authority out.
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &raw[8..]
    } else if lower.starts_with("http://") {
        &raw[7..]
    } else {
        return Err(refuse("is not an http(s) URL"));
    };
    if rest.is_empty() || rest.starts_with(['/', '\\']) {
        return Err(refuse("has no host"));
    }
    let url = Url::parse(raw).map_err(|_| refuse("is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("carries a user name or password"));
    }
    match url.host() {
        Some(Host::Domain(domain)) if public_domain(domain) => {}
        Some(Host::Ipv4(ip)) if public_v4(ip) => {}
        Some(Host::Ipv6(ip)) if public_v6(ip) => {}
        _ => return Err(refuse("is not on a public host")),
    }
    Ok(url)
}

/// The host part of `raw` as written, up to the path, query or fragment:
/// where a template's `{id}` must not be.
pub fn authority_end(raw: &str) -> usize {
    let start = raw.find("://").map_or(0, |i| i + 3);
    raw[start..]
        .find(['/', '?', '#', '\\'])
        .map_or(raw.len(), |i| start + i)
}

/// Names that never reach the public internet (RFC 6761, RFC 8375, and the
/// names cloud providers give their metadata services).
const SPECIAL_SUFFIXES: [&str; 7] = [
    "localhost",
    "local",
    "internal",
    "localdomain",
    "home.arpa",
    "intranet",
    "lan",
];

fn public_domain(domain: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    let special = SPECIAL_SUFFIXES
        .iter()
        .any(|s| domain == *s || domain.ends_with(&format!(".{s}")));
    // A single-label name resolves through the local search domain.
    domain.contains('.') && !special
}

/// Whether `ip` is on the public internet (not loopback, private,
/// link-local, metadata, shared, documentation or any other special use).
pub fn public_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => public_v4(v4),
        std::net::IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b)))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = ip.segments();
    match s[0] {
        // 6to4 carries an IPv4 address in its next 32 bits.
        0x2002 => public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )),
        // Teredo and documentation.
        0x2001 if s[1] == 0 || s[1] == 0x0db8 => false,
        // Global unicast is 2000::/3; everything else (loopback, ULA,
        // link-local, multicast, NAT64, IPv4-compatible) is not public.
        first => first & 0xe000 == 0x2000,
    }
}

/// Whether `host` is allowed by an allowlist of `example.com` (that host)
/// and `*.example.com` (its subdomains) entries. An empty list allows all.
pub fn host_allowed(host: &str, allowlist: &[String]) -> bool {
    allowlist.is_empty()
        || allowlist
            .iter()
            .any(|entry| match entry.strip_prefix("*.") {
                Some(parent) => host
                    .strip_suffix(parent)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => host == entry,
            })
}

/// An allowlist entry: a host name, or `*.` and a host name, lower-cased.
pub fn parse_allowed_host(entry: &str) -> Result<String, InvalidInput> {
    let entry = entry.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = entry.strip_prefix("*.").unwrap_or(&entry);
    let refuse = || {
        InvalidInput::new(format!(
            "link target host {} is not a public host name like book.example.com or *.example.com",
            quoted(&entry)
        ))
    };
    let parsed = Url::parse(&format!("https://{name}/")).map_err(|_| refuse())?;
    match parsed.host() {
        Some(Host::Domain(d)) if d == name && public_domain(d) => Ok(entry),
        _ => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        parse("targetUrl", raw, 2000)
            .unwrap_or_else(|e| panic!("{raw}: {}", e.0))
            .to_string()
    }

    #[test]
    fn public_http_urls_pass_normalised() {
        assert_eq!(
            ok("https://Book.Example.com/tour?office=3"),
            "https://book.example.com/tour?office=3"
        );
        assert_eq!(
            ok("http://93.184.215.14:8080/x"),
            "http://93.184.215.14:8080/x"
        );
        assert_eq!(
            ok("https://bücher.example/straße?q=ü"),
            "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"
        );
        assert_eq!(
            ok("https://[2606:4700::1111]/"),
            "https://[2606:4700::1111]/"
        );
    }

    #[test]
    fn private_loopback_and_metadata_hosts_are_refused_however_written() {
        for bad in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://[2002:7f00:1::]/",
            "http://[64:ff9b::7f00:1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://metadata.google.internal/",
            "http://printer.local/",
            "http://intranet/",
        ] {
            assert!(parse("targetUrl", bad, 2000).is_err(), "{bad}");
        }
    }

    #[test]
    fn userinfo_schemes_and_hidden_characters_are_refused() {
        for bad in [
            "https://good.example@evil.example/",
            "https://user:pw@evil.example/",
            "https://:pw@evil.example/",
            "ftp://x.example/",
            "javascript:alert(1)",
            "//x.example/",
            "/relative",
            "https:///x.example",
            "https:\\\\x.example",
            "https:x.example",
            "http://a b.example/",
            "https://x.example/\u{202E}fdp.exe",
            "https://x.example/\u{0}",
            "https://x.example/\ttab",
            "https://x.example/a\u{85}b",
        ] {
            assert!(parse("targetUrl", bad, 2000).is_err(), "{bad:?}");
        }
        assert!(
            parse(
                "targetUrl",
                &format!("https://x.example/{}", "a".repeat(2000)),
                2000
            )
            .is_err()
        );
    }

    #[test]
    fn errors_quote_a_short_prefix() {
        let long = format!("https://10.0.0.1/{}", "a".repeat(60_000));
        let message = parse("targetUrl", &long, 100_000).expect_err("private").0;
        assert!(message.len() < 300, "{}", message.len());
    }

    #[test]
    fn allowlists_match_hosts_and_subdomains() {
        let list = vec!["book.example.com".to_owned(), "*.tours.example".to_owned()];
        assert!(host_allowed("book.example.com", &list));
        assert!(host_allowed("paris.tours.example", &list));
        assert!(!host_allowed("tours.example", &list));
        assert!(!host_allowed("eviltours.example", &list));
        assert!(!host_allowed("example.com", &list));
        assert!(host_allowed("anything.example", &[]));
        assert_eq!(
            parse_allowed_host(" *.Tours.Example. "),
            Ok("*.tours.example".to_owned())
        );
        for bad in [
            "",
            "*.",
            "localhost",
            "10.0.0.1",
            "a b.example",
            "x.example/path",
            "user@x.example",
        ] {
            assert!(parse_allowed_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_authority_ends_at_the_path() {
        let t = "https://admin.example.com/visitors/{id}";
        assert_eq!(&t[..authority_end(t)], "https://admin.example.com");
        let h = "https://{id}.example.com/";
        assert!(h.find("{id}").is_some_and(|i| i < authority_end(h)));
    }
}
