//! Evaluation metrics over scores where higher means more anomalous and labels are `true` for
//! attacks.

/// ROC-AUC by the Mann–Whitney U statistic, ties counted as half (the same as scikit-learn's
/// `roc_auc_score`). `None` when either class is empty.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of the positives' ranks, with tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while pairs
            .get(j + 1)
            .is_some_and(|p| Some(p.0) == pairs.get(i).map(|q| q.0))
        {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        let pos_here = pairs
            .get(i..=j)
            .map_or(0, |s| s.iter().filter(|p| p.1).count());
        rank_sum += mean_rank * pos_here as f64;
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// The best F1 over all thresholds (a row is flagged when its score is at or above the
/// threshold), with that threshold.
pub fn best_f1(scores: &[f64], labels: &[bool]) -> (f64, f64) {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = pairs.iter().filter(|p| p.1).count() as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut best = (0.0, f64::INFINITY);
    let mut i = 0;
    while i < pairs.len() {
        let t = pairs.get(i).map_or(0.0, |p| p.0);
        while let Some(p) = pairs.get(i).filter(|p| p.0 == t) {
            if p.1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let f1 = if tp > 0.0 {
            2.0 * tp / (2.0 * tp + fp + (positives - tp))
        } else {
            0.0
        };
        if f1 > best.0 {
            best = (f1, t);
        }
    }
    best
}

/// The threshold that flags at most `fpr` of the `normal` scores (the smallest score strictly
/// above all but that fraction of them).
pub fn threshold_at_fpr(normal: &[f64], fpr: f64) -> f64 {
    let mut sorted = normal.to_vec();
    sorted.sort_by(f64::total_cmp);
    let allowed = (fpr * sorted.len() as f64).floor() as usize;
    let idx = sorted.len().saturating_sub(allowed + 1);
    let t = sorted.get(idx).copied().unwrap_or(f64::INFINITY);
    // Flagging is `score > t`: exactly `allowed` or fewer normal rows lie above it.
    t
}

/// The share of `scores` above `threshold`.
pub fn share_above(scores: &[f64], threshold: f64) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|s| **s > threshold).count() as f64 / scores.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // scikit-learn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.75
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12);
        // All tied: 0.5.
        assert_eq!(roc_auc(&[1.0; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
        let (f1, t) = best_f1(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert!((f1 - 0.8).abs() < 1e-12 && t == 0.35, "{f1} {t}");
    }

    #[test]
    fn the_fpr_threshold_flags_at_most_that_share_of_normal_rows() {
        let normal: Vec<f64> = (0..1000).map(f64::from).collect();
        let t = threshold_at_fpr(&normal, 0.01);
        assert_eq!(share_above(&normal, t), 0.01);
        assert_eq!(share_above(&normal, threshold_at_fpr(&normal, 0.0)), 0.0);
    }

    proptest! {
        /// AUC equals the share of (attack, normal) pairs ranked right, ties half.
        #[test]
        fn auc_is_the_pairwise_ranking_share(
            rows in proptest::collection::vec((0u8..20, any::<bool>()), 2..60)
        ) {
            let scores: Vec<f64> = rows.iter().map(|r| f64::from(r.0)).collect();
            let labels: Vec<bool> = rows.iter().map(|r| r.1).collect();
            let (mut num, mut den) = (0.0, 0.0);
            for (s, l) in scores.iter().zip(&labels) {
                for (s2, l2) in scores.iter().zip(&labels) {
                    if *l && !*l2 {
                        den += 1.0;
                        num += if s > s2 { 1.0 } else if s == s2 { 0.5 } else { 0.0 };
                    }
                }
            }
            match roc_auc(&scores, &labels) {
                Some(a) => prop_assert!((a - num / den).abs() < 1e-9),
                None => prop_assert!(den == 0.0),
            }
        }
    }
}
