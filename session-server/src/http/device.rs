//! Names a device in words from its stored user agent ("Chrome 156 on Linux"), for the devices
//! list. Parsing is woothee's (a maintained parser with its own dataset); it runs only when
//! sessions are listed, never on the check path.

use woothee::parser::Parser;

const UNKNOWN: &str = "UNKNOWN";

/// Operating system names as people say them.
fn os_name(os: &str) -> &str {
    match os {
        "Mac OSX" => "macOS",
        "iPhone" | "iPad" | "iPod" => "iOS",
        other => other,
    }
}

/// "Browser major-version on OS", or as much of it as the user agent tells.
pub fn describe(user_agent: &str) -> String {
    let Some(found) = Parser::new().parse(user_agent) else {
        return fallback(user_agent);
    };
    // Tools, libraries and crawlers: their own product token says more ("curl/8.5.0") than
    // woothee's class name ("HTTP Library").
    if !matches!(found.category, "pc" | "smartphone" | "mobilephone") {
        return fallback(user_agent);
    }
    let major = found.version.split('.').next().unwrap_or_default();
    let browser = match (found.name, major) {
        (UNKNOWN, _) => None,
        (name, "") | (name, UNKNOWN) => Some(name.to_owned()),
        (name, major) => Some(format!("{name} {major}")),
    };
    let os = (found.os != UNKNOWN).then(|| os_name(found.os));
    match (browser, os) {
        (Some(b), Some(os)) => format!("{b} on {os}"),
        (Some(b), None) => b,
        (None, Some(os)) => format!("Unknown browser on {os}"),
        (None, None) => fallback(user_agent),
    }
}

/// The user agent's first product token (`curl/8.5.0`), or "Unknown device".
fn fallback(user_agent: &str) -> String {
    match user_agent.split_whitespace().next() {
        Some(product) => product.chars().take(40).collect(),
        None => "Unknown device".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_are_named_with_their_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.73 Safari/537.36",
                "Chrome 156 on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
                "Firefox 140 on Windows 10",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari 18 on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari 18 on iOS",
            ),
        ];
        for (ua, want) in cases {
            assert_eq!(describe(ua), want, "{ua}");
        }
    }

    #[test]
    fn tools_and_unknown_agents_still_get_a_name() {
        assert_eq!(describe("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(describe(""), "Unknown device");
        assert_eq!(describe("   "), "Unknown device");
    }
}
