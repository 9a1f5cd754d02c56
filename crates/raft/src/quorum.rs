//! Majority arithmetic over the voters.

/// Votes needed for a majority of `voters` (more than half).
pub(crate) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest value that a majority of voters has reached, given each voter's value (for match
/// indexes: the highest index stored on a majority). `values` is reordered; it must hold one
/// value per voter.
pub(crate) fn majority_value<T: Ord + Copy + Default>(values: &mut [T]) -> T {
    if values.is_empty() {
        return T::default();
    }
    // Sorted descending, the value at position majority-1 is reached by that many voters.
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[majority(values.len()) - 1]
}

/// The outcome of a vote so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority can no longer grant.
    Lost,
    /// Not decided yet.
    Pending,
}

/// Decides a vote among `voters` with `granted` grants and `rejected` rejections so far.
pub(crate) fn vote_result(voters: usize, granted: usize, rejected: usize) -> VoteResult {
    let needed = majority(voters);
    if granted >= needed {
        VoteResult::Won
    } else if voters.saturating_sub(rejected) < needed {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_sizes() {
        assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
    }

    #[test]
    fn majority_value_is_reached_by_a_majority() {
        assert_eq!(majority_value(&mut [5u64, 1, 3]), 3);
        assert_eq!(majority_value(&mut [5u64, 1, 3, 4]), 3);
        assert_eq!(majority_value(&mut [2u64, 9, 9, 1, 1]), 2);
        assert_eq!(majority_value(&mut [7u64]), 7);
        assert_eq!(majority_value::<u64>(&mut []), 0);
    }

    #[test]
    fn votes_decide_won_lost_or_pending() {
        assert_eq!(vote_result(5, 3, 0), VoteResult::Won);
        assert_eq!(vote_result(5, 2, 2), VoteResult::Pending);
        assert_eq!(vote_result(5, 1, 3), VoteResult::Lost);
        assert_eq!(vote_result(1, 1, 0), VoteResult::Won);
        assert_eq!(vote_result(4, 2, 2), VoteResult::Lost);
    }
}
