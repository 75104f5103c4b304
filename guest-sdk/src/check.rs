//! Checks of hyperparameters whose errors name the field, as
//! [`LightningModule::new`](crate::LightningModule::new) should; `#[derive(Hyperparameters)]`
//! runs them from a field's `#[hparam(...)]` as [`Validate::validate`].

use crate::{Error, Result};
use std::fmt::Display;
use std::ops::RangeInclusive;

/// Hyperparameters that check themselves, every error naming the field:
/// `#[derive(Hyperparameters)]` implements it from the fields' `#[hparam(...)]`.
pub trait Validate {
    /// The first field that is out of bounds, as an error naming it.
    fn validate(&self) -> Result<()>;
}

/// `value` when it lies in `range`, else an error naming `field`.
pub fn within<T: PartialOrd + Display>(
    field: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<T> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::new(format!(
            "{field} must be between {} and {}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

/// An error naming `field` unless `value` is a fraction in `[0, 1)` (a dropout probability).
pub fn fraction(field: &str, value: f32) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{field} must be in [0, 1), got {value}"
        )))
    }
}

/// An error naming `field` unless `value` is a learning rate in `(0, 10]`.
pub fn learning_rate(field: &str, value: f32) -> Result<()> {
    if value.is_finite() && value > 0.0 && value <= 10.0 {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{field} must be in (0, 10], got {value}"
        )))
    }
}

/// An error naming `field` unless `value` is a finite number `>= 0` (a weight decay).
pub fn non_negative(field: &str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{field} must be a finite number >= 0, got {value}"
        )))
    }
}

/// An error naming `field` unless its `len` is at most `max`.
pub fn max_len(field: &str, len: usize, max: usize) -> Result<()> {
    if len <= max {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{field} may list at most {max} values, got {len}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    #[derive(Clone, Debug, Serialize, Deserialize, Hyperparameters)]
    #[serde(default, deny_unknown_fields)]
    struct Hparams {
        #[hparam(default = 8, range = 1..=64)]
        input_dim: u32,
        #[hparam(default = vec![16, 8], range = 1..=64, max_len = 3)]
        hidden_dims: Vec<u32>,
        #[hparam(check = check::fraction)]
        dropout: f32,
        #[hparam(default = 0.01, check = check::learning_rate)]
        lr: f32,
        optimizer: OptimizerName,
    }

    fn error(json: &str) -> String {
        let h: Hparams = serde_json::from_str(json).expect("hyperparameters parse");
        h.validate()
            .map_or_else(|e| e.message().to_string(), |()| "valid".into())
    }

    #[test]
    fn defaults_fill_what_a_request_leaves_out() {
        let h: Hparams = serde_json::from_str(r#"{"lr": 0.1}"#).expect("hyperparameters parse");
        assert_eq!((h.input_dim, h.hidden_dims.clone()), (8, vec![16, 8]));
        assert_eq!(
            (h.dropout, h.lr, h.optimizer),
            (0.0, 0.1, OptimizerName::Adam)
        );
        assert_eq!(error("{}"), "valid");
    }

    #[test]
    fn every_check_names_its_field() {
        assert_eq!(
            error(r#"{"input_dim": 0}"#),
            "input_dim must be between 1 and 64, got 0"
        );
        assert_eq!(
            error(r#"{"hidden_dims": [4, 65]}"#),
            "hidden_dims[1] must be between 1 and 64, got 65"
        );
        assert_eq!(
            error(r#"{"hidden_dims": [1, 2, 3, 4]}"#),
            "hidden_dims may list at most 3 values, got 4"
        );
        assert_eq!(
            error(r#"{"dropout": 1.0}"#),
            "dropout must be in [0, 1), got 1"
        );
        assert_eq!(error(r#"{"lr": 0.0}"#), "lr must be in (0, 10], got 0");
    }
}
