//! The .deb packages, built by `deploy/packages/build.sh` and installed,
//! upgraded and removed with dpkg on this machine: files, users, modes,
//! conffiles kept across an upgrade, state removed on purge.
//!
//! Installing packages needs root; the test fails (or with
//! GEOCDN_TESTS_ALLOW_MISSING=1 skips) without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::requirements::missing;

fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tool_present(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Builds both packages at `version`; gives their paths, geodns first.
fn build(version: &str) -> [PathBuf; 2] {
    run(
        "bash",
        &[
            root_dir()
                .join("deploy/packages/build.sh")
                .to_str()
                .unwrap(),
            "--profile",
            "dev",
            "--deb-version",
            version,
        ],
    );
    ["geodns", "edge"].map(|name| {
        root_dir()
            .join("target/debian")
            .join(format!("{name}_{version}_amd64.deb"))
    })
}

fn installed_version(package: &str) -> Option<String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.strip_prefix("install ok installed ")
        .map(str::to_string)
}

fn purge(package: &str) {
    let _ = Command::new("dpkg").args(["--purge", package]).output();
}

/// The section names of a little-endian ELF64 file.
fn elf_section_names(elf: &[u8]) -> Vec<String> {
    let u16_at = |at: usize| usize::from(u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()));
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..5], b"\x7fELF\x02", "not an ELF64 file");
    let (table, entry, count, names) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |index: usize| table + index * entry;
    let strings = u64_at(header(names) + 0x18);
    (0..count)
        .map(|index| {
            let start = strings + u32_at(header(index));
            let end = start + elf[start..].iter().position(|byte| *byte == 0).unwrap();
            String::from_utf8_lossy(&elf[start..end]).into_owned()
        })
        .collect()
}

/// What one package must have put in place.
fn check_installed(package: &str) {
    let binary = PathBuf::from(format!("/usr/bin/{package}"));
    let version = run(binary.to_str().unwrap(), &["--version"]);
    assert!(version.starts_with(package), "{version}");
    // Stripped: no symbol table, no debug information.
    let sections = elf_section_names(&std::fs::read(&binary).unwrap());
    assert!(sections.iter().any(|name| name == ".text"), "{sections:?}");
    for kept in [".symtab", ".debug_info", ".debug_line"] {
        assert!(
            !sections.iter().any(|name| name == kept),
            "{} is not stripped: {kept}",
            binary.display()
        );
    }
    let unit = std::fs::read_to_string(format!("/lib/systemd/system/{package}.service"))
        .or_else(|_| std::fs::read_to_string(format!("/usr/lib/systemd/system/{package}.service")))
        .unwrap_or_else(|error| panic!("{package}.service: {error}"));
    assert!(
        unit.contains(&format!("ExecStart=/usr/bin/{package} ")),
        "{unit}"
    );
    assert!(unit.contains(&format!("User={package}")), "{unit}");
    if package == "edge" {
        // The instances that take turns for upgrades.
        assert!(Path::new("/usr/lib/systemd/system/edge@.service").exists());
    }
    // The system user and its state directory.
    let passwd = run("getent", &["passwd", package]);
    assert!(passwd.contains("/usr/sbin/nologin"), "{passwd}");
    let uid: u32 = run("id", &["-u", package]).trim().parse().unwrap();
    let state = std::fs::metadata(format!("/var/lib/{package}")).unwrap();
    assert!(state.is_dir());
    assert_eq!(state.uid(), uid, "/var/lib/{package} belongs to {package}");
    // The configuration: root's, readable by the service only.
    let config = std::fs::metadata(format!("/etc/{package}/{package}.toml")).unwrap();
    assert_eq!(config.uid(), 0);
    assert_eq!(config.permissions().mode() & 0o777, 0o640);
    let conffiles = run("dpkg-query", &["-W", "-f=${Conffiles}", package]);
    assert!(
        conffiles.contains(&format!("/etc/{package}/{package}.toml")),
        "{conffiles}"
    );
    // Man pages (one per subcommand too) and completions.
    let man = run(
        "gzip",
        &["-dc", &format!("/usr/share/man/man1/{package}.1.gz")],
    );
    assert!(man.contains(".TH"), "{man}");
    assert!(Path::new(&format!("/usr/share/man/man1/{package}-check-config.1.gz")).exists());
    let bash = std::fs::read_to_string(format!("/usr/share/bash-completion/completions/{package}"))
        .unwrap();
    assert!(bash.contains("check-config"), "{bash}");
    assert!(Path::new(&format!("/usr/share/zsh/vendor-completions/_{package}")).exists());
    assert!(
        Path::new(&format!(
            "/usr/share/fish/vendor_completions.d/{package}.fish"
        ))
        .exists()
    );
}

#[test]
fn packages_install_upgrade_and_purge_with_dpkg() {
    if !tool_present("dpkg") {
        return missing("dpkg", "a Debian-like system");
    }
    if !tool_present("cargo-deb") {
        return missing("cargo-deb", "cargo install cargo-deb --locked");
    }
    if !run("id", &["-u"]).trim().eq("0") {
        return missing(
            "root, to install packages with dpkg",
            "run the tests as root",
        );
    }
    for package in ["geodns", "edge"] {
        purge(package);
    }

    let first = build("0.0.1-1");
    run(
        "dpkg",
        &["-i", first[0].to_str().unwrap(), first[1].to_str().unwrap()],
    );
    for package in ["geodns", "edge"] {
        assert_eq!(installed_version(package).as_deref(), Some("0.0.1-1"));
        check_installed(package);
    }
    // The shipped configuration is checked as the unit would (without its database).
    run(
        "/usr/bin/geodns",
        &[
            "check-config",
            "--structure-only",
            "/etc/geodns/geodns.toml",
        ],
    );

    // An upgrade keeps the operator's edits of the configuration.
    let edited = "\n# edited by the operator\n";
    for package in ["geodns", "edge"] {
        let path = format!("/etc/{package}/{package}.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(edited);
        std::fs::write(&path, text).unwrap();
    }
    let second = build("0.0.1-2");
    run(
        "dpkg",
        &[
            "--force-confold",
            "-i",
            second[0].to_str().unwrap(),
            second[1].to_str().unwrap(),
        ],
    );
    for package in ["geodns", "edge"] {
        assert_eq!(installed_version(package).as_deref(), Some("0.0.1-2"));
        check_installed(package);
        let text = std::fs::read_to_string(format!("/etc/{package}/{package}.toml")).unwrap();
        assert!(text.ends_with(edited), "{package}: the edit was lost");
    }

    // Removal leaves the configuration; purge takes it and the state.
    for package in ["geodns", "edge"] {
        run("dpkg", &["-r", package]);
        assert!(!Path::new(&format!("/usr/bin/{package}")).exists());
        assert!(Path::new(&format!("/etc/{package}/{package}.toml")).exists());
        run("dpkg", &["--purge", package]);
        assert_eq!(installed_version(package), None);
        assert!(!Path::new(&format!("/etc/{package}/{package}.toml")).exists());
        assert!(!Path::new(&format!("/var/lib/{package}")).exists());
    }
}
