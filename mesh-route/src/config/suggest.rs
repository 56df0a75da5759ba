//! "Did you mean …?" suggestions for misspelled names.
//!
//! An edit distance (Levenshtein) finds the closest valid field name, enum value or port
//! name, and serde's terse `unknown field` / `unknown variant` messages are rewritten into
//! `unknown field "subet" (did you mean "subset"?)`.

/// Number of single-character insertions, deletions or substitutions turning `a` into `b`.
///
/// ```
/// use mesh_route::config::suggest::levenshtein;
/// assert_eq!(levenshtein("subet", "subset"), 1);
/// assert_eq!(levenshtein("kitten", "sitting"), 3);
/// ```
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo:
/// at most `max(2, len/3)` edits away (compared case-insensitively).
///
/// ```
/// use mesh_route::config::suggest::closest;
/// assert_eq!(closest("LEAST_REQEST", ["ROUND_ROBIN", "LEAST_REQUEST"]), Some("LEAST_REQUEST"));
/// assert_eq!(closest("zzzzzz", ["subset"]), None);
/// ```
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lowered = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != word)
        .map(|candidate| (levenshtein(&lowered, &candidate.to_lowercase()), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// ` (did you mean "x"?)` when a close candidate exists, otherwise an empty string.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

/// A serde error message made readable, and the field it names when that field is not
/// already part of the error's path.
#[cfg(feature = "yaml")]
pub(crate) struct Readable {
    /// The rewritten message.
    pub(crate) message: String,
    /// For `missing field`: the missing field's name, to append to the path.
    pub(crate) missing_field: Option<String>,
}

/// Rewrites serde's messages:
/// - ``unknown field `subet`, expected one of `host`, `subset` `` →
///   `unknown field "subet" (did you mean "subset"?)`;
/// - ``unknown variant `LEAST_REQEST`, expected …`` → `unknown value "LEAST_REQEST" (did you
///   mean "LEAST_REQUEST"?)`;
/// - ``missing field `host` `` → `required field "host" is missing`;
/// - anything else: backticks become double quotes.
#[cfg(feature = "yaml")]
pub(crate) fn readable_serde_message(message: &str) -> Readable {
    let quoted = backticked(message);
    let rewrite = |what: &str| {
        let Some((word, candidates)) = quoted.split_first() else {
            return message.replace('`', "\"");
        };
        let hint = did_you_mean(word, candidates.iter().map(String::as_str));
        if !hint.is_empty() {
            format!("{what} \"{word}\"{hint}")
        } else if candidates.is_empty() {
            format!("{what} \"{word}\"")
        } else {
            let list: Vec<String> = candidates.iter().map(|c| format!("\"{c}\"")).collect();
            format!("{what} \"{word}\" (expected one of {})", list.join(", "))
        }
    };
    if message.starts_with("unknown field") {
        Readable {
            message: rewrite("unknown field"),
            missing_field: None,
        }
    } else if message.starts_with("unknown variant") {
        Readable {
            message: rewrite("unknown value"),
            missing_field: None,
        }
    } else if let (true, Some(field)) = (message.starts_with("missing field"), quoted.first()) {
        Readable {
            message: format!("required field \"{field}\" is missing"),
            missing_field: Some(field.clone()),
        }
    } else {
        Readable {
            message: message.replace('`', "\""),
            missing_field: None,
        }
    }
}

/// The `backticked` words of a serde message, in order.
#[cfg(feature = "yaml")]
fn backticked(message: &str) -> Vec<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(levenshtein("htp", "http"), 1);
    }

    #[test]
    fn suggestion_threshold() {
        // Two edits are always allowed.
        assert_eq!(closest("rout", ["route", "match"]), Some("route"));
        assert_eq!(closest("weigth", ["weight"]), Some("weight"));
        // Long words allow len/3 edits.
        assert_eq!(
            closest("retryRemoteLocalitys", ["retryRemoteLocalities"]),
            Some("retryRemoteLocalities")
        );
        // Too far: no suggestion.
        assert_eq!(closest("abc", ["xyz"]), None);
        // Case differences are free.
        assert_eq!(
            closest("least_request", ["LEAST_REQUEST"]),
            Some("LEAST_REQUEST")
        );
    }

    #[test]
    fn rewrites_unknown_field() {
        let r = readable_serde_message(
            "unknown field `subet`, expected one of `host`, `subset`, `port`",
        );
        assert_eq!(
            r.message,
            "unknown field \"subet\" (did you mean \"subset\"?)"
        );
        let r = readable_serde_message("unknown field `zzzzzz`, expected `host` or `subset`");
        assert_eq!(
            r.message,
            "unknown field \"zzzzzz\" (expected one of \"host\", \"subset\")"
        );
        let r = readable_serde_message("unknown field `x`, there are no fields");
        assert_eq!(r.message, "unknown field \"x\"");
    }

    #[test]
    fn rewrites_unknown_variant_and_missing_field() {
        let r = readable_serde_message(
            "unknown variant `LEAST_REQEST`, expected one of `UNSPECIFIED`, `LEAST_REQUEST`",
        );
        assert_eq!(
            r.message,
            "unknown value \"LEAST_REQEST\" (did you mean \"LEAST_REQUEST\"?)"
        );
        let r = readable_serde_message("missing field `host`");
        assert_eq!(r.message, "required field \"host\" is missing");
        assert_eq!(r.missing_field.as_deref(), Some("host"));
        let r = readable_serde_message("invalid type: integer `1`, expected a string");
        assert_eq!(r.message, "invalid type: integer \"1\", expected a string");
    }
}
