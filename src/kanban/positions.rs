//! Card positions within a stage (kanban.md, Positions): gapped integer keys, so a normal move
//! rewrites one row. Top = first − [`GAP`] (an empty stage: 0), bottom = last + [`GAP`],
//! between two cards their midpoint rounded down. When the neighbours are less than 2 apart
//! the caller renumbers the whole stage to `i × GAP` in the same transaction.

/// The distance between neighbours after a renumbering, and of top/bottom inserts.
pub const GAP: i64 = 65_536;

/// The position for a slot between `before` (the card above, if any) and `after` (the card
/// below, if any); `None` when there is no room and the stage must be renumbered.
pub fn between(before: Option<i64>, after: Option<i64>) -> Option<i64> {
    match (before, after) {
        (None, None) => Some(0),
        (None, Some(next)) => next.checked_sub(GAP),
        (Some(prev), None) => prev.checked_add(GAP),
        (Some(prev), Some(next)) => {
            let room = next.checked_sub(prev)?;
            (room >= 2).then(|| prev + room / 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_bottom_and_midpoints() {
        assert_eq!(between(None, None), Some(0));
        assert_eq!(between(None, Some(0)), Some(-GAP));
        assert_eq!(between(Some(0), None), Some(GAP));
        assert_eq!(between(Some(0), Some(GAP)), Some(GAP / 2));
        assert_eq!(between(Some(0), Some(3)), Some(1));
        assert_eq!(between(Some(-3), Some(0)), Some(-2));
    }

    #[test]
    fn no_room_asks_for_a_renumbering() {
        assert_eq!(between(Some(4), Some(5)), None);
        assert_eq!(between(Some(4), Some(4)), None);
        assert_eq!(between(None, Some(i64::MIN)), None);
        assert_eq!(between(Some(i64::MAX), None), None);
    }

    #[test]
    fn repeated_inserts_between_the_same_cards_run_out_after_sixteen() {
        let (low, mut high) = (0, GAP);
        let mut inserts = 0;
        while let Some(p) = between(Some(low), Some(high)) {
            high = p;
            inserts += 1;
        }
        assert_eq!(inserts, 16);
    }
}
