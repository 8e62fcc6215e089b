//! Reciprocal-rank fusion of several rankings (Cormack, Clarke & Büttcher, 2009): each list
//! gives a result `1 / (k + rank)`, ranks starting at 1, and the sums decide. It needs no
//! score calibration between BM25 and cosine similarity, which live on unrelated scales.

use std::collections::HashMap;
use std::hash::Hash;

/// The usual constant; it keeps the top of one list from drowning the other.
pub const K: f32 = 60.0;

/// Fuses rankings (best first) into one, best first, with the fused score.
pub fn reciprocal_rank_fusion<T: Copy + Eq + Hash>(rankings: &[Vec<T>], k: f32) -> Vec<(T, f32)> {
    let mut scores: HashMap<T, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for ranking in rankings {
        for (rank, item) in ranking.iter().enumerate() {
            let entry = scores.entry(*item).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (k + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(T, f32, usize)> = scores.into_iter().map(|(t, (s, o))| (t, s, o)).collect();
    // Ties keep the order in which items were first seen, so the result is deterministic.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().map(|(t, s, _)| (t, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_found_by_both_lists_rise() {
        let bm25 = vec!['a', 'b', 'c'];
        let vectors = vec!['c', 'd', 'a'];
        let fused = reciprocal_rank_fusion(&[bm25, vectors], K);
        let order: Vec<char> = fused.iter().map(|f| f.0).collect();
        assert_eq!(order, vec!['a', 'c', 'b', 'd']);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
    }
}
