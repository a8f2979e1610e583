//! Label relations, eq. 1: `R[a][b] = P(a|b) = N(a∧b) / N(b)`, with
//! `N(b) = 0` giving 0.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RelationMatrix(
    #[serde(serialize_with = "crate::short_float::matrix")] pub Vec<Vec<f32>>,
);

impl RelationMatrix {
    /// Counts co-occurrences in 0/1 label rows of `classes` columns.
    pub fn from_labels<'a>(rows: impl IntoIterator<Item = &'a [f32]>, classes: usize) -> Self {
        let mut both = vec![vec![0u64; classes]; classes];
        let mut single = vec![0u64; classes];
        for row in rows {
            assert_eq!(row.len(), classes, "label row width");
            for b in 0..classes {
                if row[b] >= 0.5 {
                    single[b] += 1;
                    for a in 0..classes {
                        if row[a] >= 0.5 {
                            both[a][b] += 1;
                        }
                    }
                }
            }
        }
        Self(
            (0..classes)
                .map(|a| {
                    (0..classes)
                        .map(|b| {
                            if single[b] == 0 {
                                0.0
                            } else {
                                both[a][b] as f32 / single[b] as f32
                            }
                        })
                        .collect()
                })
                .collect(),
        )
    }

    /// The identity-free empty relation (all zeros), for "relations off".
    pub fn zeros(classes: usize) -> Self {
        Self(vec![vec![0.0; classes]; classes])
    }

    /// `P(a|b)`.
    pub fn get(&self, a: usize, b: usize) -> f32 {
        self.0[a][b]
    }

    pub fn classes(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_probabilities_by_hand() {
        let rows: Vec<Vec<f32>> = vec![
            vec![1., 1., 0.],
            vec![0., 1., 0.],
            vec![1., 0., 0.],
            vec![0., 1., 0.],
        ];
        let r = RelationMatrix::from_labels(rows.iter().map(|r| r.as_slice()), 3);
        assert_eq!(r.get(0, 1), 1.0 / 3.0); // P(a0 | a1): 1 of 3
        assert_eq!(r.get(1, 0), 0.5); // P(a1 | a0): 1 of 2
        assert_eq!(r.get(0, 0), 1.0);
        assert_eq!(r.get(0, 2), 0.0); // N(b) = 0
    }
}
