//! Measured model speeds, cached per model and machine in `$CAIRN_CACHE_DIR/speed.json`
//! so that only the first load of a model on a machine pays for the probe.
//!
//! The key is the GGUF's sha256, the CPU model, the core count, the GPU backend compiled
//! in, the GPU layers and the thread counts: change any of them and the model is
//! measured again. `CAIRN_SPEED_PROBE=off` skips the probe (no speed, so no latency
//! budget), `=again` measures even when a cached value exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::types::Speed;

/// What a speed was measured for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedKey {
    pub sha256: String,
    pub cpu: String,
    pub cores: usize,
    pub gpu: Option<&'static str>,
    pub gpu_layers: u32,
    pub threads: i32,
    pub threads_batch: i32,
    /// The llama.cpp build (see [`llama_build`]): a rebuild with other CPU kernels or
    /// optimisation runs at another speed.
    pub build: String,
}

impl SpeedKey {
    pub fn for_this_machine(
        sha256: &str,
        gpu_layers: u32,
        threads: i32,
        threads_batch: i32,
    ) -> Self {
        SpeedKey {
            sha256: sha256.to_string(),
            cpu: cpu_model(),
            cores: cores(),
            gpu: crate::gpu_backend(),
            gpu_layers: if crate::gpu_backend().is_some() {
                gpu_layers
            } else {
                0
            },
            threads,
            threads_batch,
            build: llama_build().to_string(),
        }
    }

    fn as_string(&self) -> String {
        format!(
            "{}|{}|{} cores|gpu {}|ngl {}|threads {}/{}|build {}",
            self.sha256,
            self.cpu,
            self.cores,
            self.gpu.unwrap_or("none"),
            self.gpu_layers,
            self.threads,
            self.threads_batch,
            self.build
        )
    }
}

/// A short digest of the llama.cpp build this binary links: the CPU features and backends
/// it was compiled with (llama.cpp's system info) and its CMake build type
/// (`LLAMA_LIB_PROFILE`, see `scripts/llama-build-env`).
pub fn llama_build() -> &'static str {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILD.get_or_init(|| {
        use sha2::Digest;
        // SAFETY: llama.cpp returns a pointer to a NUL-terminated string it keeps in a
        // static buffer; it is read here, once, before anything else could rewrite it.
        #[allow(unsafe_code)]
        let info = unsafe { std::ffi::CStr::from_ptr(llama_cpp_sys_2::llama_print_system_info()) };
        let mut h = sha2::Sha256::new();
        h.update(info.to_bytes());
        h.update(
            option_env!("LLAMA_LIB_PROFILE")
                .unwrap_or("default")
                .as_bytes(),
        );
        hex::encode(&h.finalize()[..6])
    })
}

/// Logical cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU's model name (`/proc/cpuinfo` on Linux), else the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The 1-minute load average, where the OS reports one.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub speed: Speed,
    /// Seconds since the epoch.
    pub measured_at: u64,
    /// The 1-minute load average when measured (others' work slows the probe).
    #[serde(default)]
    pub load: Option<f64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    speeds: BTreeMap<String, Measured>,
}

pub struct SpeedCache {
    path: PathBuf,
}

/// What `CAIRN_SPEED_PROBE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbePolicy {
    /// Use the cached value, measure when there is none (the default).
    Cached,
    /// Measure even when cached.
    Again,
    /// Never measure.
    Off,
}

pub fn probe_policy() -> ProbePolicy {
    match std::env::var("CAIRN_SPEED_PROBE").as_deref() {
        Ok("off" | "0" | "no") => ProbePolicy::Off,
        Ok("again" | "force") => ProbePolicy::Again,
        _ => ProbePolicy::Cached,
    }
}

impl SpeedCache {
    pub fn open_default() -> SpeedCache {
        SpeedCache::at(&crate::registry::cache_dir().join("speed.json"))
    }

    pub fn at(path: &Path) -> SpeedCache {
        SpeedCache {
            path: path.to_path_buf(),
        }
    }

    fn read(&self) -> CacheFile {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn get(&self, key: &SpeedKey) -> Option<Measured> {
        self.read().speeds.get(&key.as_string()).cloned()
    }

    /// Stores a measurement (best effort: a cache that cannot be written only means the
    /// next load measures again).
    pub fn put(&self, key: &SpeedKey, speed: Speed) {
        let mut file = self.read();
        let measured_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        file.speeds.insert(
            key.as_string(),
            Measured {
                speed,
                measured_at,
                load: load_average(),
            },
        );
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        let Ok(bytes) = serde_json::to_vec_pretty(&file) else {
            return;
        };
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_cached_per_model_threads_and_build() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SpeedCache::at(&dir.path().join("speed.json"));
        let k1 = SpeedKey::for_this_machine("aa", 0, 1, 2);
        let k2 = SpeedKey::for_this_machine("aa", 0, 2, 2);
        assert!(cache.get(&k1).is_none());
        let s = Speed {
            prompt_tokens_per_s: 100.0,
            decode_tokens_per_s: 20.0,
            wide_decode_tokens_per_s: None,
        };
        cache.put(&k1, s);
        assert_eq!(cache.get(&k1).unwrap().speed, s);
        assert!(cache.get(&k2).is_none(), "other threads, other speed");
        // The same model and threads under another llama.cpp build (other CPU kernels,
        // another optimisation level) is measured again.
        let rebuilt = SpeedKey {
            build: "0123456789ab".into(),
            ..k1.clone()
        };
        assert_ne!(k1.build, rebuilt.build);
        assert!(cache.get(&rebuilt).is_none(), "another build, other speed");
        assert_eq!(llama_build().len(), 12);
        assert_eq!(llama_build(), k1.build);
        assert!(!cpu_model().is_empty());
        assert!(cores() >= 1);
    }
}
