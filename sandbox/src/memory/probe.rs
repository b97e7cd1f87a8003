//! Which memory limit applies to this task, and how many vCPUs it has.
//!
//! The kernel's OOM killer acts on the cgroup's limit, so that one wins over anything but an explicit flag;
//! on Fargate the container cgroup may be unlimited while the task has a size, which the ECS task metadata
//! endpoint knows; /proc/meminfo is the last resort (on Fargate it shows the micro-VM, about twice the task).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cgroup::{self, CgroupDir, CgroupVersion};
use super::sampler::Sampler;

/// Time allowed for one request to the ECS task metadata endpoint (it answers in milliseconds on a task;
/// off ECS the variable is unset and no request is made).
const ECS_TIMEOUT: Duration = Duration::from_secs(2);
const ECS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// vCPUs assumed when neither the flag nor ECS says.
const DEFAULT_VCPU: f64 = 4.0;
const MIB: u64 = 1 << 20;

/// Where the memory limit came from (`flag`, `cgroup_v2`, `cgroup_v1`, `ecs_metadata`, `meminfo`, `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    Flag,
    CgroupV2,
    CgroupV1,
    EcsMetadata,
    Meminfo,
    /// Nothing could be read (not Linux?); the limit is `u64::MAX` and the guard never acts.
    Unknown,
}

/// The memory limit the guard and the profile measure against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryLimit {
    pub bytes: u64,
    pub source: LimitSource,
    /// The cgroup directory whose limit binds (own cgroup or an ancestor), for cgroup sources only; usage
    /// is then read from that same directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_dir: Option<PathBuf>,
}

impl MemoryLimit {
    fn new(bytes: u64, source: LimitSource) -> MemoryLimit {
        MemoryLimit {
            bytes,
            source,
            cgroup_dir: None,
        }
    }
}

/// The cgroup version of a memory cgroup directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryCgroupVersion {
    V1,
    V2,
}

/// A process's memory cgroup directory as found through `/proc/<pid>/cgroup` and mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCgroup {
    pub dir: PathBuf,
    pub version: MemoryCgroupVersion,
}

/// Where to look: the roots of procfs and of the cgroup filesystems, and the ECS metadata base URI.
/// Tests point these at fixture trees and a local server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub proc_root: PathBuf,
    pub cgroup_root: PathBuf,
    pub ecs_metadata_uri: Option<String>,
}

impl Probe {
    /// `/proc`, `/sys/fs/cgroup` and `$ECS_CONTAINER_METADATA_URI_V4`.
    pub fn system() -> Probe {
        Probe {
            proc_root: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            ecs_metadata_uri: std::env::var("ECS_CONTAINER_METADATA_URI_V4")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }

    /// The limit, first found of:
    /// 1. `flag` (`--memory-limit`);
    /// 2. genrun's own memory cgroup: the smallest of v2 `memory.max` / v1 `memory.limit_in_bytes` over the
    ///    cgroup and its visible ancestors (`max` or >= 2^60 means none);
    /// 3. the ECS task metadata `Limits.Memory` (MiB), with a short timeout;
    /// 4. `/proc/meminfo` `MemTotal`.
    pub async fn detect_limit(&self, flag: Option<u64>) -> MemoryLimit {
        if let Some(bytes) = flag {
            return MemoryLimit::new(bytes, LimitSource::Flag);
        }
        if let Some(limit) = self.cgroup_limit() {
            return limit;
        }
        if let Some(mib) = self.ecs_limits().await.and_then(|l| l.memory) {
            if mib.is_finite() && mib >= 1.0 {
                return MemoryLimit::new((mib * MIB as f64) as u64, LimitSource::EcsMetadata);
            }
        }
        match self.meminfo_total() {
            Some(bytes) => MemoryLimit::new(bytes, LimitSource::Meminfo),
            None => MemoryLimit::new(u64::MAX, LimitSource::Unknown),
        }
    }

    /// `flag` (`--vcpu`), else the ECS task metadata `Limits.CPU` (vCPU), else 4.
    pub async fn detect_vcpu(&self, flag: Option<f64>) -> f64 {
        if let Some(v) = flag {
            return v;
        }
        match self.ecs_limits().await.and_then(|l| l.cpu) {
            Some(v) if v.is_finite() && v > 0.0 => v,
            _ => DEFAULT_VCPU,
        }
    }

    /// A sampler measuring usage the way `limit` is enforced: the limiting cgroup's working set when the
    /// limit is a cgroup's, otherwise the RSS of genrun and its process tree.
    pub fn sampler(&self, limit: &MemoryLimit) -> Sampler {
        let limiting = match (limit.source, &limit.cgroup_dir) {
            (LimitSource::CgroupV1, Some(dir)) => Some(CgroupDir {
                version: CgroupVersion::V1,
                dir: dir.clone(),
                mount: dir.clone(),
            }),
            (LimitSource::CgroupV2, Some(dir)) => Some(CgroupDir {
                version: CgroupVersion::V2,
                dir: dir.clone(),
                mount: dir.clone(),
            }),
            _ => None,
        };
        let oom_source = limiting.clone().or_else(|| self.own_cgroup());
        Sampler::new(self.proc_root.clone(), limiting, oom_source)
    }

    pub(crate) fn own_cgroup(&self) -> Option<CgroupDir> {
        cgroup::find_memory_cgroup(&self.proc_root.join("self"), &self.cgroup_root)
    }

    fn cgroup_limit(&self) -> Option<MemoryLimit> {
        let own = self.own_cgroup()?;
        let (bytes, binding) = cgroup::effective_limit(&own)?;
        let source = match binding.version {
            CgroupVersion::V1 => LimitSource::CgroupV1,
            CgroupVersion::V2 => LimitSource::CgroupV2,
        };
        Some(MemoryLimit {
            bytes,
            source,
            cgroup_dir: Some(binding.dir),
        })
    }

    fn meminfo_total(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.proc_root.join("meminfo")).ok()?;
        parse_meminfo_total(&text)
    }

    async fn ecs_limits(&self) -> Option<TaskLimits> {
        let base = self.ecs_metadata_uri.as_deref()?;
        let url = format!("{}/task", base.trim_end_matches('/'));
        match fetch_task_metadata(&url).await {
            Ok(meta) => meta.limits,
            Err(e) => {
                tracing::debug!(url, error = %e, "ecs task metadata unavailable");
                None
            }
        }
    }
}

/// genrun's own memory cgroup directory (where a test may create a child cgroup), if visible.
pub fn own_memory_cgroup_dir(probe: &Probe) -> Option<PathBuf> {
    own_memory_cgroup(probe).map(|c| c.dir)
}

/// genrun's own memory cgroup, with its version.
pub fn own_memory_cgroup(probe: &Probe) -> Option<MemoryCgroup> {
    probe.own_cgroup().map(|c| MemoryCgroup {
        dir: c.dir,
        version: match c.version {
            CgroupVersion::V1 => MemoryCgroupVersion::V1,
            CgroupVersion::V2 => MemoryCgroupVersion::V2,
        },
    })
}

/// `MemTotal:  16314380 kB` -> bytes.
fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line
        .trim_start_matches("MemTotal:")
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// The part of the ECS task metadata v4 `/task` document we read:
/// `{"Limits": {"CPU": 0.25, "Memory": 512}, ...}` (CPU in vCPU, Memory in MiB; both optional).
#[derive(Debug, Deserialize)]
struct TaskMetadata {
    #[serde(rename = "Limits")]
    limits: Option<TaskLimits>,
}

#[derive(Debug, Clone, Deserialize)]
struct TaskLimits {
    #[serde(rename = "CPU")]
    cpu: Option<f64>,
    #[serde(rename = "Memory")]
    memory: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
enum MetadataError {
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    #[error("status {0}")]
    Status(u16),
    #[error("malformed task metadata")]
    Json(#[source] serde_json::Error),
}

async fn fetch_task_metadata(url: &str) -> Result<TaskMetadata, MetadataError> {
    let client = reqwest::Client::builder()
        .timeout(ECS_TIMEOUT)
        .connect_timeout(ECS_CONNECT_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(MetadataError::Request)?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(MetadataError::Request)?;
    if !resp.status().is_success() {
        return Err(MetadataError::Status(resp.status().as_u16()));
    }
    let body = resp.bytes().await.map_err(MetadataError::Request)?;
    serde_json::from_slice(&body).map_err(MetadataError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_parses_kb() {
        let text = "MemTotal:       16314380 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(16314380 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: lots kB\n"), None);
    }
}
