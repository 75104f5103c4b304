//! Tables from CSV files: the feature columns as f32 inputs, the target column as class
//! indices (text labels, mapped to indices in sorted order and reported) or as numbers
//! (whole numbers, `2` or `2.0`: class indices; others: values).

use super::DataError;
use std::collections::BTreeSet;

/// What to take from a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvSpec {
    /// The target column's name (with a header) or index (without).
    pub target: Option<String>,
    /// The feature columns; all columns but the target when empty.
    pub features: Vec<String>,
    /// Whether the first row names the columns.
    pub header: bool,
}

/// A CSV table as numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The feature columns, in input order.
    pub features: Vec<String>,
    /// Rows × features, row-major.
    pub inputs: Vec<f32>,
    /// One target per row, if a target column was named.
    pub targets: Option<Targets>,
    /// The class labels, by index, when the target column held text.
    pub classes: Option<Vec<String>>,
}

/// The targets of a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class indices.
    Classes(Vec<i64>),
    /// Values.
    Values(Vec<f32>),
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.inputs
            .len()
            .checked_div(self.features.len())
            .unwrap_or(0)
    }
}

/// Reads `bytes` (the file `name`, for errors) as `spec` says, row by row; a table of more
/// than `max_elements` input values is refused as soon as it gets there.
pub fn parse(
    name: &str,
    bytes: &[u8],
    spec: &CsvSpec,
    max_elements: usize,
) -> Result<Table, DataError> {
    read(bytes, spec, max_elements).map_err(|m| DataError::Invalid(format!("{name}: {m}")))
}

/// [`parse`], its errors without the file's name.
fn read(bytes: &[u8], spec: &CsvSpec, max_elements: usize) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(spec.header)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let names = column_names(&mut reader, spec.header)?;
    let columns = Columns::select(&names, spec)?;
    let first_line = if spec.header { 2 } else { 1 };
    let (inputs, labels) = read_rows(&mut reader, &names, &columns, first_line, max_elements)?;
    let (targets, classes) = match columns.target {
        None => (None, None),
        Some(_) => {
            let (targets, classes) = targets_of(labels);
            (Some(targets), classes)
        }
    };
    Ok(Table {
        features: columns
            .features
            .iter()
            .filter_map(|f| names.get(*f).cloned())
            .collect(),
        inputs,
        targets,
        classes,
    })
}

/// The columns' names: the header's, or their indices without one (the reader still sizes,
/// but does not consume, the first row then).
fn column_names(reader: &mut csv::Reader<&[u8]>, header: bool) -> Result<Vec<String>, String> {
    let names = reader.headers().map_err(|e| e.to_string())?.iter();
    Ok(names
        .enumerate()
        .map(|(i, name)| {
            if header {
                name.to_string()
            } else {
                i.to_string()
            }
        })
        .collect())
}

/// The columns a spec takes, by index.
struct Columns {
    /// The target column.
    target: Option<usize>,
    /// The feature columns, in input order.
    features: Vec<usize>,
}

impl Columns {
    /// The target and feature columns `spec` names among `names`: every column but the
    /// target when it names no features; each at most once.
    fn select(names: &[String], spec: &CsvSpec) -> Result<Self, String> {
        let column = |wanted: &str| {
            names.iter().position(|n| n == wanted).ok_or_else(|| {
                format!("no column {wanted:?}; the columns are {}", names.join(", "))
            })
        };
        let target = spec.target.as_deref().map(column).transpose()?;
        let features: Vec<usize> = if spec.features.is_empty() {
            (0..names.len()).filter(|i| Some(*i) != target).collect()
        } else {
            spec.features
                .iter()
                .map(|f| column(f))
                .collect::<Result<_, _>>()?
        };
        if features.is_empty() {
            return Err("no feature columns".into());
        }
        if let Some(twice) = spec
            .features
            .iter()
            .enumerate()
            .find(|(i, f)| spec.features.iter().skip(i + 1).any(|g| g == *f))
        {
            return Err(format!("feature {:?} is listed twice", twice.1));
        }
        Ok(Self { target, features })
    }
}

/// Every row's feature values (row-major) and target text, the file's lines counted from
/// `first_line`; more than `max_elements` values are refused as soon as they are read.
fn read_rows(
    reader: &mut csv::Reader<&[u8]>,
    names: &[String],
    columns: &Columns,
    first_line: usize,
    max_elements: usize,
) -> Result<(Vec<f32>, Vec<String>), String> {
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| e.to_string())?;
        let line = i + first_line;
        if inputs.len().saturating_add(columns.features.len()) > max_elements {
            return Err(format!(
                "more than {max_elements} values by line {line}, the limit of elements per \
                 tensor (tensor_elements)"
            ));
        }
        for &f in &columns.features {
            let text = record.get(f).unwrap_or_default();
            let value: f32 = text.parse().map_err(|_| {
                format!(
                    "line {line}, column {:?}: {text:?} is not a number",
                    names.get(f).map_or("", String::as_str)
                )
            })?;
            inputs.push(value);
        }
        if let Some(t) = columns.target {
            labels.push(record.get(t).unwrap_or_default().to_string());
        }
    }
    if inputs.is_empty() {
        return Err("no rows".into());
    }
    Ok((inputs, labels))
}

/// Whole numbers (`2`, `2.0`) as class indices, other numbers as values, text as class
/// labels (sorted).
fn targets_of(labels: Vec<String>) -> (Targets, Option<Vec<String>>) {
    if let Ok(indices) = labels.iter().map(|l| l.parse::<i64>()).collect() {
        return (Targets::Classes(indices), None);
    }
    if let Ok(values) = labels
        .iter()
        .map(|l| l.parse::<f32>())
        .collect::<Result<Vec<_>, _>>()
    {
        return match values.iter().map(|v| whole(*v)).collect() {
            Some(indices) => (Targets::Classes(indices), None),
            None => (Targets::Values(values), None),
        };
    }
    let classes: Vec<String> = labels
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let indices = labels
        .iter()
        .map(|l| classes.binary_search(l).unwrap_or(0) as i64)
        .collect();
    (Targets::Classes(indices), Some(classes))
}

/// `value` as a class index, when it is a whole number an f32 holds exactly.
fn whole(value: f32) -> Option<i64> {
    const EXACT: f32 = (1u32 << f32::MANTISSA_DIGITS) as f32;
    (value.fract() == 0.0 && value.abs() <= EXACT).then_some(value as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(target: &str) -> CsvSpec {
        CsvSpec {
            target: Some(target.into()),
            features: Vec::new(),
            header: true,
        }
    }

    #[test]
    fn whole_numbers_are_class_indices_and_fractions_values() {
        let targets = |csv: &[u8]| {
            parse("t.csv", csv, &spec("y"), 100)
                .expect("the CSV parses")
                .targets
        };
        assert_eq!(
            targets(b"x,y\n1,0.0\n2,2.0\n3,1\n"),
            Some(Targets::Classes(vec![0, 2, 1]))
        );
        assert_eq!(
            targets(b"x,y\n1,0.5\n2,2.0\n"),
            Some(Targets::Values(vec![0.5, 2.0]))
        );
    }

    #[test]
    fn labels_become_classes_and_columns_are_picked_by_name() {
        let csv = b"a, b, species\n1, 2.5, virginica\n3, 4, setosa\n5, 6, virginica\n";
        let table = parse("t.csv", csv, &spec("species"), 100).expect("the CSV parses");
        assert_eq!(table.features, ["a", "b"]);
        assert_eq!(table.inputs, [1.0, 2.5, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(table.targets, Some(Targets::Classes(vec![1, 0, 1])));
        assert_eq!(
            table.classes,
            Some(vec!["setosa".into(), "virginica".into()])
        );
        assert_eq!(table.rows(), 3);
        let picked = CsvSpec {
            features: vec!["b".into()],
            ..spec("a")
        };
        let table = parse("t.csv", csv, &picked, 100).expect("the CSV parses");
        assert_eq!(
            (table.inputs, table.targets),
            (vec![2.5, 4.0, 6.0], Some(Targets::Classes(vec![1, 3, 5])))
        );
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let e = |csv: &[u8], spec: &CsvSpec| {
            parse("t.csv", csv, spec, 4)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            e(b"a,y\n1,0\nx,1\n", &spec("y")),
            "t.csv: line 3, column \"a\": \"x\" is not a number"
        );
        assert!(
            e(b"a,y\n1,0\n", &spec("label")).contains("no column \"label\"; the columns are a, y")
        );
        assert!(e(b"a,y\n", &spec("y")).contains("no rows"));
        assert!(e(b"a,y\n1,0\n2\n", &spec("y")).contains("t.csv: "));
        assert!(
            e(b"a,y\n1,0\n2,0\n3,0\n4,0\n5,0\n", &spec("y"))
                .contains("more than 4 values by line 6")
        );
        let twice = CsvSpec {
            features: vec!["a".into(), "a".into()],
            ..spec("y")
        };
        assert!(e(b"a,y\n1,0\n", &twice).contains("feature \"a\" is listed twice"));
    }
}
