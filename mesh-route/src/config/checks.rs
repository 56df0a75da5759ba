//! Value checks shared by the validation rules.
//!
//! Each check reports at most one error, at the field `at.name` (`at` is the path of the
//! enclosing object, `name` the field's own name), in the wording every rule uses:
//! `NAME must be at least 1ms, got D`, `NAME P is not in 0-100` and
//! `NAME must not be negative, got N`. An unset field (`None`) is always fine.

use std::fmt::Display;

use super::diagnostic::{Reporter, join_path};
use super::duration::Duration;

/// The shortest duration Istio accepts for a timeout or interval (`ValidateDuration`).
const MIN_DURATION: std::time::Duration = std::time::Duration::from_millis(1);

/// Reports `at.name` when `value` is set and shorter than 1ms.
pub(crate) fn at_least_1ms(value: Option<Duration>, at: &str, name: &str, r: &mut Reporter<'_>) {
    if let Some(value) = value
        && value.get() < MIN_DURATION
    {
        r.error(
            join_path(at, name),
            format!("{name} must be at least 1ms, got {value}"),
        );
    }
}

/// Reports `at.name` when `value` is set and not in 0-100 (both ends included).
pub(crate) fn percent_0_100<T>(value: Option<T>, at: &str, name: &str, r: &mut Reporter<'_>)
where
    T: PartialOrd + From<u8> + Display,
{
    if let Some(value) = value
        && !(T::from(0)..=T::from(100)).contains(&value)
    {
        r.error(
            join_path(at, name),
            format!("{name} {value} is not in 0-100"),
        );
    }
}

/// Reports `at.name` when `value` is set and negative.
pub(crate) fn not_negative(value: Option<i32>, at: &str, name: &str, r: &mut Reporter<'_>) {
    if let Some(value) = value
        && value < 0
    {
        r.error(
            join_path(at, name),
            format!("{name} must not be negative, got {value}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostic::{Diagnostic, Origin};

    fn run(check: impl FnOnce(&mut Reporter<'_>)) -> Vec<String> {
        let origin = Origin::new("t.yaml", 0);
        let mut out = Vec::new();
        check(&mut Reporter::new(&origin, "R t", &mut out));
        out.iter().map(Diagnostic::to_string).collect()
    }

    #[test]
    fn bounds_are_inclusive_and_unset_is_fine() {
        let ms = |n| Some(Duration(std::time::Duration::from_millis(n)));
        assert!(run(|r| at_least_1ms(ms(1), "a", "d", r)).is_empty());
        assert!(run(|r| at_least_1ms(None, "a", "d", r)).is_empty());
        assert!(run(|r| percent_0_100(Some(0), "a", "p", r)).is_empty());
        assert!(run(|r| percent_0_100(Some(100.0), "a", "p", r)).is_empty());
        assert!(run(|r| not_negative(Some(0), "a", "n", r)).is_empty());
        assert_eq!(
            run(|r| at_least_1ms(ms(0), "", "d", r)),
            ["error: t.yaml (document 1) R t: d: d must be at least 1ms, got 0s"]
        );
        assert_eq!(
            run(|r| percent_0_100(Some(100.5), "a[0]", "p", r)),
            ["error: t.yaml (document 1) R t: a[0].p: p 100.5 is not in 0-100"]
        );
        assert_eq!(
            run(|r| not_negative(Some(-3), "a.b", "n", r)),
            ["error: t.yaml (document 1) R t: a.b.n: n must not be negative, got -3"]
        );
    }
}
