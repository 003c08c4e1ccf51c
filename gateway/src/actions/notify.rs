//! What `notify_user` may say.
//!
//! A message from the company's identity provider is the most trusted channel a phisher
//! could borrow: an agent steered by log content ("tell everyone to re-verify at …") could
//! send it to every user. So the text the user receives is either an operator's template,
//! whose blanks the agent fills with short plain values (no links, no markup), or text the
//! agent wrote, which a person approves word for word like any other action.

use std::collections::BTreeMap;

/// The templates an operator starts with (`[gateway.policy.notify_templates]` replaces
/// them).
pub fn default_templates() -> BTreeMap<String, String> {
    [
        (
            "was_this_you",
            "We noticed a sign-in to your account from {location} at {time}. If this was not you, contact the IT service desk through the usual channel. We will never ask you for your password.",
        ),
        (
            "account_secured",
            "As a precaution, the security team has secured your account ({action}). Contact the IT service desk through the usual channel to restore access. We will never ask you for your password.",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Longest value of one blank, characters.
pub const MAX_VALUE_CHARS: usize = 80;

/// Why a value cannot fill a blank: anything beyond letters (any script), digits, spaces and
/// `, : - ( )` could carry a link, an address or markup (dots of every script, invisible
/// and direction-changing characters, `@`, `/`, `+` are all out).
fn unfit(value: &str) -> Option<&'static str> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Some("longer than 80 characters");
    }
    if value.trim().is_empty() {
        return Some("is empty");
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_alphabetic() || c.is_ascii_digit() || matches!(c, ' ' | ',' | ':' | '-' | '(' | ')')))
    {
        return Some(if c == '.' || c == '\u{3002}' || c == '\u{ff0e}' {
            "holds a dot (a domain name or an address)"
        } else if c.is_control() || c.is_whitespace() {
            "holds control or invisible characters"
        } else {
            "holds characters other than letters, digits, spaces and , : - ( )"
        });
    }
    // A phone number is a channel of its own.
    if value.chars().filter(char::is_ascii_digit).count() > 12 {
        return Some("holds more than 12 digits");
    }
    None
}

/// The text of template `name` with its blanks (`{blank}`) filled from `values`. Every blank
/// needs a value, every value a blank.
pub fn render(
    templates: &BTreeMap<String, String>,
    name: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, String> {
    let template = templates.get(name).ok_or_else(|| {
        format!(
            "no notification template {name:?}; the operator's templates are: {}",
            templates.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let mut out = String::with_capacity(template.len());
    let mut used = std::collections::BTreeSet::new();
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("template {name:?} has an unclosed blank"))?;
        let blank = &after[..close];
        let value = values
            .get(blank)
            .ok_or_else(|| format!("template {name:?} needs a value for {{{blank}}} in `values`"))?;
        if let Some(why) = unfit(value) {
            return Err(format!(
                "the value for {{{blank}}} {why}; values are short plain words (a place, a time, an action)"
            ));
        }
        out.push_str(value);
        used.insert(blank);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if let Some(extra) = values.keys().find(|k| !used.contains(k.as_str())) {
        return Err(format!("template {name:?} has no blank {{{extra}}}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn blanks_take_plain_values_only() {
        let t = default_templates();
        let text = render(
            &t,
            "was_this_you",
            &values(&[("location", "Lagos, NG"), ("time", "2026-12-07 01:20 UTC")]),
        )
        .unwrap();
        assert!(text.starts_with("We noticed a sign-in to your account from Lagos, NG at 2026-12-07 01:20 UTC."));
        for bad in [
            "https://evil.example/verify",
            "www.evil.example",
            "evil-login.com",
            "Lagos. Verify at okta-verify.net now",
            "<a href=x>here</a>",
            "line\nbreak",
            "okta-verify\u{200b}com",
            "\u{202e}moc.nigol-atko",
            "okta-verify\u{3002}com",
            "okta-verify\u{ff0e}com",
            "login.xn--p1ai",
            "203.0.113.5",
            "mail me@evil",
            "call +1 415 555 0100 2233",
            &"x".repeat(81),
        ] {
            let e = render(&t, "was_this_you", &values(&[("location", bad), ("time", "now")])).unwrap_err();
            assert!(e.contains("the value for {location}"), "{bad}: {e}");
        }
        assert!(
            render(&t, "was_this_you", &values(&[("location", "Lagos")]))
                .unwrap_err()
                .contains("{time}")
        );
        assert!(
            render(
                &t,
                "was_this_you",
                &values(&[("location", "a"), ("time", "b"), ("link", "c")])
            )
            .unwrap_err()
            .contains("no blank {link}")
        );
        assert!(
            render(&t, "reset_now", &values(&[]))
                .unwrap_err()
                .contains("was_this_you")
        );
    }
}
