//! Compute precision of matrix products (`--precision f32|bf16|f16`).
//!
//! ept keeps weights, prompts, activations and gradients in f32 (the master copies of
//! mixed-precision training) and lowers only the arithmetic of matrix products — every
//! linear layer and both attention products, forward and backward — the way PyTorch's
//! AMP autocasts `matmul`/`linear` while keeping reductions and the optimizer in f32.
//! On the flex backend each f32 matmul then rounds its operands to bf16 (or, scaled by
//! a power of two per operand, to f16) and accumulates in f32 (`burn_flex::
//! MatmulPrecision` documents the exact arithmetic). Convolutions (the ViT patch
//! embedding, ~1 % of its FLOPs, and PUNet) stay f32.
//!
//! The setting is process-wide: call [`set_precision`] once, before training or
//! inference starts, as with the thread count.

use std::fmt;
use std::str::FromStr;

use crate::BackendKind;

/// The arithmetic of matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Plain f32 everywhere (the default).
    #[default]
    F32,
    /// bfloat16 operands, f32 accumulation.
    Bf16,
    /// IEEE half operands (per-operand power-of-two scaling), f32 accumulation.
    F16,
}

impl Precision {
    /// The spellings `--precision` accepts, canonical first.
    pub const NAMES: [&'static str; 3] = ["f32", "bf16", "f16"];
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

/// Why a precision could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrecisionError {
    #[error("unknown precision '{0}': expected f32, bf16 or f16")]
    Unknown(String),
    #[error(
        "precision {precision} is implemented for the flex CPU backend only; \
         '{backend}' computes in f32 (use --precision f32 or --device flex)"
    )]
    Unsupported {
        precision: Precision,
        backend: BackendKind,
    },
}

impl FromStr for Precision {
    type Err = PrecisionError;

    /// `f32 | fp32 | float32`, `bf16 | bfloat16`, `f16 | fp16 | half` (case-insensitive).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "fp16" | "half" | "float16" => Ok(Precision::F16),
            _ => Err(PrecisionError::Unknown(input.to_string())),
        }
    }
}

/// Make every later matrix product on `backend` compute at `precision`. f32 is
/// accepted everywhere; bf16/f16 need the flex backend.
pub fn set_precision(precision: Precision, backend: BackendKind) -> Result<(), PrecisionError> {
    match (precision, backend) {
        (Precision::F32, _) => {
            #[cfg(feature = "flex")]
            burn_flex::set_matmul_precision(burn_flex::MatmulPrecision::F32);
            Ok(())
        }
        #[cfg(feature = "flex")]
        (reduced, BackendKind::Flex) => {
            burn_flex::set_matmul_precision(match reduced {
                Precision::Bf16 => burn_flex::MatmulPrecision::Bf16,
                _ => burn_flex::MatmulPrecision::F16,
            });
            Ok(())
        }
        (precision, backend) => Err(PrecisionError::Unsupported { precision, backend }),
    }
}

/// The precision matrix products use now.
pub fn current_precision() -> Precision {
    #[cfg(feature = "flex")]
    {
        match burn_flex::matmul_precision() {
            burn_flex::MatmulPrecision::F32 => Precision::F32,
            burn_flex::MatmulPrecision::Bf16 => Precision::Bf16,
            burn_flex::MatmulPrecision::F16 => Precision::F16,
        }
    }
    #[cfg(not(feature = "flex"))]
    Precision::F32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_and_rejects_others() {
        for (input, expected) in [
            ("f32", Precision::F32),
            ("FP32", Precision::F32),
            ("bf16", Precision::Bf16),
            ("bfloat16", Precision::Bf16),
            ("f16", Precision::F16),
            (" half ", Precision::F16),
        ] {
            assert_eq!(input.parse::<Precision>(), Ok(expected), "{input}");
        }
        assert_eq!(
            "int8".parse::<Precision>(),
            Err(PrecisionError::Unknown("int8".into()))
        );
        for name in Precision::NAMES {
            assert_eq!(name.parse::<Precision>().unwrap().to_string(), name);
        }
    }

    #[test]
    fn reduced_precision_is_refused_off_flex() {
        let error = set_precision(Precision::Bf16, BackendKind::NdArray).unwrap_err();
        assert!(error.to_string().contains("flex CPU backend only"), "{error}");
        assert_eq!(current_precision(), Precision::F32);
    }
}
