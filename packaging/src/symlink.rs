//! Decides whether a symlink may be archived: only when its target stays inside the workspace.
//!
//! The target is resolved lexically from the link's directory (never through the filesystem, so
//! nothing is read through the link). Lexical `..` is only sound over real directories, so a target
//! that walks through another symlink as an intermediate component (`a/../..` where `a` is a link)
//! is refused too. Absolute targets are refused even when they point into the workspace: they
//! would dangle (or point elsewhere) once extracted on another machine.

use std::path::{Component, Path, PathBuf};

/// True when the link at `link_rel` (workspace-relative) with `target` resolves inside `root`.
pub(crate) fn stays_inside(root: &Path, link_rel: &Path, target: &Path) -> bool {
    if target.as_os_str().is_empty() || target.is_absolute() {
        return false;
    }
    let mut stack: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(parent) = link_rel.parent() {
        for c in parent.components() {
            match c {
                Component::Normal(n) => stack.push(n),
                _ => return false,
            }
        }
    }
    let comps: Vec<Component<'_>> = target.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            Component::Normal(n) => {
                stack.push(n);
                if !last && is_symlink(&root.join(stack.iter().collect::<PathBuf>())) {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

fn is_symlink(p: &Path) -> bool {
    p.symlink_metadata()
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn inside(link: &str, target: &str) -> bool {
        stays_inside(
            Path::new("/nonexistent-root"),
            Path::new(link),
            Path::new(target),
        )
    }

    #[test]
    fn lexical_cases() {
        assert!(inside("a", "b"));
        assert!(inside("a/b/l", "../c"));
        assert!(inside("a/b/l", "../../c"));
        assert!(
            inside("a/l", ".."),
            "a link to the workspace root stays inside"
        );
        assert!(inside("node_modules/.bin/vite", "../vite/bin/vite.js"));
        assert!(inside("a/l", "./x/./y"));
        assert!(!inside("l", ".."));
        assert!(!inside("a/b/l", "../../../c"));
        assert!(!inside("a/l", "x/../../../y"));
        assert!(!inside("l", "/etc/passwd"));
        assert!(!inside("l", ""));
    }

    #[test]
    fn a_target_through_another_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("sub")).unwrap();
        // sub/up -> .. is inside by itself, but `sub/up/..` really is the root's parent.
        symlink("..", root.join("sub/up")).unwrap();
        assert!(stays_inside(root, Path::new("sub/up"), Path::new("..")));
        assert!(!stays_inside(
            root,
            Path::new("l"),
            Path::new("sub/up/../x")
        ));
        assert!(!stays_inside(root, Path::new("l"), Path::new("sub/up/x")));
        // Pointing AT another link (last component) is fine: that link is judged on its own.
        assert!(stays_inside(root, Path::new("l"), Path::new("sub/up")));
        // Real directories as intermediates are fine.
        assert!(stays_inside(
            root,
            Path::new("l"),
            Path::new("sub/../sub/x")
        ));
    }
}
