//! Paths of the workspace's binaries, for end-to-end tests outside their packages.

use std::path::PathBuf;

/// `target/<profile>/<name>`, built with `cargo build --bins` if missing.
pub fn binary(name: &str) -> PathBuf {
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(|deps| deps.parent())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    let path = profile_dir.join(name);
    if !path.is_file() {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--bins"])
                .current_dir(workspace)
                .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot build the binaries for {name}"
        );
    }
    assert!(path.is_file(), "{} not found", path.display());
    path
}
