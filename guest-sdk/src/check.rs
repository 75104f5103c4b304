//! Checks of hyperparameters whose errors name the field, as [`LightningModule::new`]
//! (crate::LightningModule::new) should.

use crate::{Error, Result};
use std::ops::RangeInclusive;

/// `value` when it lies in `range`, else an error naming `field`.
pub fn within(field: &str, value: u32, range: RangeInclusive<u32>) -> Result<u32> {
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
