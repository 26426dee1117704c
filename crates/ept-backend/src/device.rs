//! Device selection: `cpu | flex | ndarray | cuda[:N]` parsed into a [`DeviceSpec`],
//! checked against the backends compiled into this binary, and turned into a burn
//! [`Device`]. An unknown name or a backend left out at build time is a typed error
//! that says which cargo feature would enable it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A tensor backend ept can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// burn-flex: pure-Rust CPU backend with SIMD GEMM. The default.
    Flex,
    /// burn-ndarray: the older pure-Rust CPU backend (kept for parity checks).
    NdArray,
    /// NVIDIA GPUs through CubeCL/CUDA.
    Cuda,
}

impl BackendKind {
    /// Every backend, compiled in or not, in the order `--help` lists them.
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::NdArray, BackendKind::Cuda];

    /// The cargo feature of `ept-backend` (and of every crate above it) that compiles it in.
    pub fn cargo_feature(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::NdArray => "ndarray",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_compiled_in(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::NdArray => cfg!(feature = "ndarray"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Backends usable in this binary.
    pub fn compiled_in() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.is_compiled_in()).collect()
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cargo_feature())
    }
}

/// A parsed `--device` value: a backend plus, for GPUs, the device index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    pub backend: BackendKind,
    pub index: usize,
}

/// Why a device string could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device '{0}': expected one of cpu, flex, ndarray, cuda, cuda:N (N = GPU index)")]
    Unknown(String),
    #[error("device '{input}': '{index}' is not a GPU index (write e.g. cuda:0)")]
    BadIndex { input: String, index: String },
    #[error(
        "device '{input}' needs the '{backend}' backend, which this binary was built without; \
         rebuild with `--features {feature}` (compiled in: {compiled})"
    )]
    NotCompiled {
        input: String,
        backend: BackendKind,
        feature: &'static str,
        compiled: String,
    },
}

impl Default for DeviceSpec {
    /// The first compiled-in backend, flex when present.
    fn default() -> Self {
        let backend = BackendKind::compiled_in()
            .into_iter()
            .next()
            .unwrap_or(BackendKind::Flex);
        DeviceSpec { backend, index: 0 }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    /// Parse `cpu | flex | ndarray | cuda | cuda:N` (case-insensitive); `cpu` means flex.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let lowered = input.trim().to_ascii_lowercase();
        let (name, index) = match lowered.split_once(':') {
            Some((name, idx)) => {
                let index = idx.parse::<usize>().map_err(|_| DeviceError::BadIndex {
                    input: input.to_string(),
                    index: idx.to_string(),
                })?;
                (name, Some(index))
            }
            None => (lowered.as_str(), None),
        };
        let backend = match name {
            "cpu" | "flex" => BackendKind::Flex,
            "ndarray" => BackendKind::NdArray,
            "cuda" | "gpu" => BackendKind::Cuda,
            _ => return Err(DeviceError::Unknown(input.to_string())),
        };
        if index.is_some() && backend != BackendKind::Cuda {
            return Err(DeviceError::Unknown(input.to_string()));
        }
        if !backend.is_compiled_in() {
            let compiled = BackendKind::compiled_in()
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(DeviceError::NotCompiled {
                input: input.to_string(),
                backend,
                feature: backend.cargo_feature(),
                compiled,
            });
        }
        Ok(DeviceSpec {
            backend,
            index: index.unwrap_or(0),
        })
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            BackendKind::Cuda => write!(f, "cuda:{}", self.index),
            other => write!(f, "{other}"),
        }
    }
}

impl DeviceSpec {
    /// The burn device for inference (no autodiff graph).
    pub fn device(&self) -> Device {
        match self.backend {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Device::flex(),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // kept on purpose as a second CPU implementation for parity tests
            BackendKind::NdArray => Device::ndarray(),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Device::cuda(self.index),
            #[allow(unreachable_patterns)]
            other => unreachable!(
                "DeviceSpec for {other} exists only when its feature is compiled in (checked in from_str)"
            ),
        }
    }

    /// The same device with autodiff enabled, for training.
    pub fn autodiff_device(&self) -> Device {
        self.device().autodiff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap().backend, BackendKind::Flex);
        assert_eq!(" FLEX ".parse::<DeviceSpec>().unwrap().backend, BackendKind::Flex);
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let err = "tpu".parse::<DeviceSpec>().unwrap_err();
        assert_eq!(err, DeviceError::Unknown("tpu".into()));
        assert!(err.to_string().contains("cuda:N"));
    }

    #[test]
    fn bad_index_is_reported() {
        let err = "cuda:x".parse::<DeviceSpec>().unwrap_err();
        assert!(matches!(err, DeviceError::BadIndex { .. }), "{err}");
        assert!(matches!(
            "flex:1".parse::<DeviceSpec>(),
            Err(DeviceError::Unknown(_))
        ));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_names_the_feature() {
        let err = "cuda:1".parse::<DeviceSpec>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--features cuda"), "{text}");
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_index_is_kept() {
        let spec: DeviceSpec = "cuda:1".parse().unwrap();
        assert_eq!(spec.index, 1);
        assert_eq!(spec.to_string(), "cuda:1");
    }
}
