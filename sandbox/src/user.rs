//! The agent's user: resolving `--agent-user NAME|UID`, handing it the workspace and its HOME, and keeping
//! genrun's own files (staging, job document, its memory) out of its reach.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;

/// The user the agent runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: u32,
    /// The passwd name, or the number itself for a uid without a passwd entry.
    pub name: String,
    /// The passwd home directory, when there is an entry (genrun gives the agent a per-job HOME anyway).
    pub home: Option<PathBuf>,
}

/// Resolving `--agent-user` failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no user named {name:?}")]
    NotFound { name: String },
    #[error("invalid user {spec:?}: expected a user name or a numeric uid")]
    Invalid { spec: String },
    #[error("cannot read the user database")]
    Lookup {
        #[source]
        source: io::Error,
    },
}

/// Resolves `NAME` or a numeric `UID`. A uid without a passwd entry is allowed (gid = uid, no home): a
/// container image need not have one for the agent to run under it.
pub fn resolve_user(spec: &str) -> Result<UserSpec, UserError> {
    let spec_trim = spec.trim();
    if spec_trim.is_empty() || spec_trim.contains(['\0', ':', '/']) {
        return Err(UserError::Invalid { spec: spec.into() });
    }
    if spec_trim.bytes().all(|b| b.is_ascii_digit()) {
        let uid: u32 = spec_trim
            .parse()
            .map_err(|_| UserError::Invalid { spec: spec.into() })?;
        if uid == u32::MAX {
            // (uid_t)-1 means "unchanged" to setuid/chown.
            return Err(UserError::Invalid { spec: spec.into() });
        }
        return match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(u)) => Ok(from_nix(u)),
            Ok(None) => Ok(UserSpec {
                uid,
                gid: uid,
                name: uid.to_string(),
                home: None,
            }),
            Err(e) => Err(UserError::Lookup { source: e.into() }),
        };
    }
    match nix::unistd::User::from_name(spec_trim) {
        Ok(Some(u)) => Ok(from_nix(u)),
        Ok(None) => Err(UserError::NotFound {
            name: spec_trim.into(),
        }),
        Err(e) => Err(UserError::Lookup { source: e.into() }),
    }
}

/// The passwd entry named `name` (e.g. the default `agent`), when one exists.
pub fn lookup_user(name: &str) -> Option<UserSpec> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(from_nix)
}

fn from_nix(u: nix::unistd::User) -> UserSpec {
    UserSpec {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        name: u.name,
        home: Some(u.dir),
    }
}

/// Whether genrun runs with effective uid 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Gives `path` and everything below it to `user` (chown -R). Symbolic links are changed themselves and
/// never followed, so a link planted in the workspace cannot hand the agent a file outside it.
pub fn prepare_dir_for(path: &Path, user: &UserSpec) -> Result<(), SandboxError> {
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).map_err(|source| SandboxError::Read {
            path: p.clone(),
            source,
        })?;
        std::os::unix::fs::lchown(&p, Some(user.uid), Some(user.gid)).map_err(|source| {
            SandboxError::Chown {
                path: p.clone(),
                source,
            }
        })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&p).map_err(|source| SandboxError::Read {
                path: p.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| SandboxError::Read {
                    path: p.clone(),
                    source,
                })?;
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Makes `path` private to its owner: 0700 for a directory, 0600 for a file. A directory blocks everything
/// below it, so staging needs this once at its root. Refuses a symbolic link.
pub fn restrict_to_owner(path: &Path) -> Result<(), SandboxError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| SandboxError::Read {
        path: path.into(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(SandboxError::Symlink { path: path.into() });
    }
    let mode = if meta.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        SandboxError::Chmod {
            path: path.into(),
            source,
        }
    })
}

/// Marks genrun non-dumpable: no core dumps of its memory (tokens), and its /proc files (environ, mem) are
/// owned by root even when it runs as another user, so the agent cannot read them.
pub fn set_non_dumpable() -> Result<(), SandboxError> {
    // SAFETY: PR_SET_DUMPABLE takes plain integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(SandboxError::Dumpable {
            source: io::Error::last_os_error(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn resolves_names_and_numbers() {
        let root = resolve_user("root").unwrap();
        assert_eq!((root.uid, root.gid, root.name.as_str()), (0, 0, "root"));
        assert_eq!(root.home.as_deref(), Some(Path::new("/root")));
        let by_num = resolve_user("0").unwrap();
        assert_eq!(by_num, root);
        let nobody = resolve_user("65534").unwrap();
        assert_eq!(nobody.name, "nobody");
        assert_eq!(lookup_user("nobody"), Some(nobody));
    }

    #[test]
    fn uid_without_entry_is_allowed_and_unknown_name_is_not() {
        let u = resolve_user("54321").unwrap();
        assert_eq!(
            u,
            UserSpec {
                uid: 54321,
                gid: 54321,
                name: "54321".into(),
                home: None
            }
        );
        assert!(matches!(
            resolve_user("no-such-user-genrun"),
            Err(UserError::NotFound { .. })
        ));
        assert_eq!(lookup_user("no-such-user-genrun"), None);
        for bad in ["", "  ", "a:b", "../x", "4294967295", "99999999999"] {
            assert!(
                matches!(resolve_user(bad), Err(UserError::Invalid { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn chown_recursive_does_not_follow_symlinks() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("a/b")).unwrap();
        std::fs::write(ws.join("a/b/f.txt"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.join("a/link")).unwrap();
        let user = resolve_user("54321").unwrap();
        prepare_dir_for(&ws, &user).unwrap();
        for p in ["", "a", "a/b", "a/b/f.txt", "a/link"] {
            let m = std::fs::symlink_metadata(ws.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (54321, 54321), "{p}");
        }
        // The link's target keeps its owner.
        assert_eq!(std::fs::metadata(outside.path()).unwrap().uid(), 0);
        assert!(matches!(
            prepare_dir_for(&dir.path().join("missing"), &user),
            Err(SandboxError::Read { .. })
        ));
    }

    #[test]
    fn restrict_sets_owner_only_modes_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("staging");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("job.json");
        std::fs::write(&f, "{}").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_to_owner(&sub).unwrap();
        restrict_to_owner(&f).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(matches!(
            restrict_to_owner(&link),
            Err(SandboxError::Symlink { .. })
        ));
    }
}
