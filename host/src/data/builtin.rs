//! The datasets the server ships (`host/datasets/`, licences in its README), usable by name.

use crate::tensor::Rng;

/// A dataset embedded in the binary: a CSV file with a header and a target column.
#[derive(Debug)]
pub struct BuiltinDataset {
    /// The name requests use, e.g. `iris`.
    pub name: &'static str,
    /// One line on what it is.
    pub description: &'static str,
    /// Where it comes from, and its licence.
    pub source: &'static str,
    /// The CSV file.
    pub csv: &'static [u8],
    /// The target column.
    pub target: &'static str,
    /// The shape of one sample's inputs, unless a request asks for another of the same size.
    pub sample_shape: &'static [usize],
    /// Every input value is multiplied by this (to bring pixels into `[0, 1]`).
    pub scale: f32,
    /// Rows held out for validation and for test, as fractions of the file.
    pub val_fraction: f64,
    /// See `val_fraction`.
    pub test_fraction: f64,
}

/// Every built-in dataset.
pub const DATASETS: &[BuiltinDataset] = &[
    BuiltinDataset {
        name: "iris",
        description: "Fisher's iris flowers: 150 samples of 4 measurements (cm), 3 species",
        source: "R. A. Fisher (1936), UCI Machine Learning Repository, doi:10.24432/C56C76; CC BY 4.0",
        csv: include_bytes!("../../datasets/iris.csv"),
        target: "species",
        sample_shape: &[4],
        scale: 1.0,
        val_fraction: 0.2,
        test_fraction: 0.2,
    },
    BuiltinDataset {
        name: "digits",
        description: "Handwritten digits: 1,797 images of 8x8 pixels (scaled to [0, 1]), 10 classes",
        source: "E. Alpaydin, C. Kaynak (1998), UCI Machine Learning Repository, \
                 doi:10.24432/C50P49; CC BY 4.0",
        csv: include_bytes!("../../datasets/digits.csv"),
        target: "digit",
        sample_shape: &[1, 8, 8],
        scale: 1.0 / 16.0,
        val_fraction: 0.2,
        test_fraction: 0.2,
    },
];

/// The seed of every built-in dataset's split: the same rows are held out on every run, so
/// test scores compare across runs and checkpoints.
const SPLIT_SEED: u64 = 0x1_7e57;

/// The rows of each split.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub val: Vec<usize>,
    /// Test rows (also the prediction inputs).
    pub test: Vec<usize>,
}

impl BuiltinDataset {
    /// The dataset called `name`; the error lists the ones there are.
    pub fn find(name: &str) -> Result<&'static Self, String> {
        DATASETS.iter().find(|d| d.name == name).ok_or_else(|| {
            let names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
            format!(
                "there is no built-in dataset {name:?}; there are: {}",
                names.join(", ")
            )
        })
    }

    /// The fixed split of `rows` rows, each part in the file's order.
    pub fn splits(&self, rows: usize) -> Splits {
        let count = |fraction: f64| ((rows as f64) * fraction).round() as usize;
        let order = Rng::seeded(SPLIT_SEED).permutation(rows);
        let (val, rest) = order.split_at(count(self.val_fraction).min(rows));
        let (test, train) = rest.split_at(count(self.test_fraction).min(rest.len()));
        let sorted = |part: &[usize]| {
            let mut part = part.to_vec();
            part.sort_unstable();
            part
        };
        Splits {
            train: sorted(train),
            val: sorted(val),
            test: sorted(test),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::csv::{self, CsvSpec, Targets};

    #[test]
    fn every_dataset_parses_and_splits_into_disjoint_parts() {
        for d in DATASETS {
            let spec = CsvSpec {
                target: Some(d.target.to_string()),
                features: Vec::new(),
                header: true,
            };
            let table = match csv::parse(d.name, d.csv, &spec, usize::MAX) {
                Ok(table) => table,
                Err(e) => panic!("{}: {e}", d.name),
            };
            let width: usize = d.sample_shape.iter().product();
            assert_eq!(table.features.len(), width, "{}", d.name);
            let rows = table.rows();
            let s = d.splits(rows);
            let mut all: Vec<usize> = [s.train.clone(), s.val.clone(), s.test.clone()].concat();
            all.sort_unstable();
            assert_eq!(all, (0..rows).collect::<Vec<_>>(), "{}", d.name);
            let near = |part: &[usize], fraction: f64| {
                (part.len() as f64 - rows as f64 * fraction).abs() <= 0.5
            };
            assert!(near(&s.val, d.val_fraction) && near(&s.test, d.test_fraction));
            assert_eq!(d.splits(rows), s, "the split is fixed");
            assert!(matches!(table.targets, Some(Targets::Classes(_))));
        }
        let iris = BuiltinDataset::find("iris").map(|d| d.name);
        assert_eq!(iris, Ok("iris"));
        let missing = BuiltinDataset::find("mnist").err().unwrap_or_default();
        assert!(missing.contains("iris, digits"), "{missing}");
    }
}
