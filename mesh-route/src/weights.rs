//! Weighted destinations, shared by HTTP and stream (`tcp`/`tls`) routes: the slices of
//! `[0, total)` a route's weights give its destinations, and the random draw that picks one.

/// `(index, upper bound)` of each destination of a route that gets traffic, in order, and the
/// total: a lone destination gets everything whatever its weight; otherwise a destination gets
/// its weight's share, none without a weight. `field` is the route's path, for errors.
pub(crate) fn slices(
    weights: impl ExactSizeIterator<Item = Option<i32>>,
    field: &str,
) -> Result<(Vec<(usize, u32)>, u32), String> {
    let single = weights.len() == 1;
    let mut slices = Vec::with_capacity(weights.len());
    let mut total: u32 = 0;
    for (i, weight) in weights.enumerate() {
        let weight = match weight {
            _ if single => 1,
            Some(w) => u32::try_from(w)
                .map_err(|_| format!("{field}.route[{i}].weight: {w} is negative"))?,
            None => 0,
        };
        if weight == 0 {
            continue;
        }
        total = total
            .checked_add(weight)
            .ok_or_else(|| format!("{field}.route[{i}].weight: total weight overflows"))?;
        slices.push((i, total));
    }
    if slices.is_empty() {
        return Err(format!("{field}.route: total destination weight = 0"));
    }
    Ok((slices, total))
}

/// The one of `items` (in slice order, `upto` giving each one's upper bound) whose slice holds
/// a random draw in `[0, total)`; no draw for a single item.
pub(crate) fn pick<T>(items: &[T], total: u32, upto: impl Fn(&T) -> u32) -> &T {
    &items[pick_index(items, total, upto)]
}

/// The position of the item [`pick`] picks.
pub(crate) fn pick_index<T>(items: &[T], total: u32, upto: impl Fn(&T) -> u32) -> usize {
    if items.len() == 1 {
        return 0;
    }
    let draw = rand::random_range(0..total);
    items
        .iter()
        .position(|item| draw < upto(item))
        .unwrap_or(items.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_follow_the_weights() {
        let (slices, total) =
            slices([Some(25), None, Some(0), Some(75)].into_iter(), "http[0]").unwrap();
        assert_eq!((slices, total), (vec![(0, 25), (3, 100)], 100));
        assert_eq!(
            slices_of(&[Some(0)]),
            Ok((vec![(0, 1)], 1)),
            "a lone destination gets all"
        );
        assert_eq!(
            slices_of(&[Some(-1), Some(1)]).unwrap_err(),
            "http[0].route[0].weight: -1 is negative"
        );
        assert_eq!(
            slices_of(&[Some(0), None]).unwrap_err(),
            "http[0].route: total destination weight = 0"
        );
    }

    fn slices_of(weights: &[Option<i32>]) -> Result<(Vec<(usize, u32)>, u32), String> {
        slices(weights.iter().copied(), "http[0]")
    }
}
