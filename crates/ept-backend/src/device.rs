//! Device selection: `cpu | flex | ndarray | cuda[:N]` parsed into a [`DeviceSpec`],
//! checked against the backends compiled into this binary, and turned into a burn
//! [`Device`]. An unknown name or a backend left out at build time is a typed error
//! that says which cargo feature would enable it. [`DeviceSpec::check_available`] asks,
//! before burn touches it, whether a GPU device can run here (driver, NVRTC, index):
//! burn's CUDA runtime panics on a background thread where it cannot.

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
    #[error("device '{device}' cannot run here: {reason}")]
    Unavailable { device: String, reason: String },
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

    /// Whether this device can run here: a CPU backend always can; a GPU needs its driver,
    /// the run-time kernel compiler (NVRTC) and a GPU of this index. Call it before the
    /// first tensor: burn's CUDA runtime panics on a background thread when any is missing.
    pub fn check_available(&self) -> Result<(), DeviceError> {
        match self.backend {
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => cuda_probe::check(self.index).map_err(|reason| DeviceError::Unavailable {
                device: self.to_string(),
                reason,
            }),
            _ => Ok(()),
        }
    }

    /// The first device of every compiled-in backend that can run here (a GPU backend on
    /// a machine without a GPU is left out), in [`BackendKind::ALL`] order: what parity
    /// tests run on.
    pub fn usable_devices() -> Vec<DeviceSpec> {
        BackendKind::compiled_in()
            .into_iter()
            .map(|backend| DeviceSpec { backend, index: 0 })
            .filter(|spec| spec.check_available().is_ok())
            .collect()
    }
}

/// Asks the CUDA driver, through the bindings burn's cuda backend itself uses, whether a
/// GPU can run: each library is opened by name, and nothing is left initialised that
/// burn would not initialise the same way.
#[cfg(feature = "cuda")]
mod cuda_probe {
    use cudarc::{driver, nvrtc};

    pub fn check(index: usize) -> Result<(), String> {
        // SAFETY: only tries to open the driver library by its usual names.
        if !unsafe { driver::sys::is_culib_present() } {
            return Err(
                "no NVIDIA driver: libcuda.so could not be loaded (install the driver, \
                        or add its folder to LD_LIBRARY_PATH)"
                    .into(),
            );
        }
        // SAFETY: as above, for NVRTC (which compiles the kernels at run time).
        if !unsafe { nvrtc::sys::is_culib_present() } {
            return Err(
                "CUDA's run-time compiler NVRTC (libnvrtc.so) could not be loaded \
                        (install the CUDA toolkit, or add its lib folder to LD_LIBRARY_PATH)"
                    .into(),
            );
        }
        driver::result::init().map_err(|e| format!("the CUDA driver failed to start: {e}"))?;
        let count = driver::result::device::get_count()
            .map_err(|e| format!("the CUDA driver could not count GPUs: {e}"))?;
        match usize::try_from(count) {
            Ok(count) if index < count => Ok(()),
            _ => Err(format!("there is no GPU {index}: the driver sees {count}")),
        }
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

    #[cfg(feature = "cuda")]
    #[test]
    fn a_gpu_that_is_not_there_is_a_clear_error() {
        // No machine has GPU 9999: without a driver the probe stops earlier, with one at
        // the index; either way it is an error naming the device, not a panic.
        let spec: DeviceSpec = "cuda:9999".parse().unwrap();
        let err = spec.check_available().unwrap_err();
        assert!(matches!(err, DeviceError::Unavailable { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("device 'cuda:9999' cannot run here:"),
            "{err}"
        );
        assert!(!DeviceSpec::usable_devices().contains(&spec));
    }

    #[test]
    fn cpu_backends_are_always_usable() {
        for backend in [BackendKind::Flex, BackendKind::NdArray] {
            let spec = DeviceSpec { backend, index: 0 };
            assert!(spec.check_available().is_ok());
            assert_eq!(
                DeviceSpec::usable_devices().contains(&spec),
                backend.is_compiled_in()
            );
        }
    }
}
