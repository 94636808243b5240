//! `Manifests::from_paths` and `manifest_files`: what a directory walk
//! reads, in what order, and that it never loops or runs away.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use mcnet_core::diag::Code;
use mcnet_core::policy::{manifest_files, Manifests};

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mcnet-paths-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: a}\nspec: {podSelector: {}}\n";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn names(root: &Path, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn a_walk_reads_manifests_in_name_order_and_skips_the_rest() {
    let d = TempDir::new("walk");
    let root = d.0.as_path();
    write(&root.join("b.yaml"), POLICY);
    write(&root.join("a/z.json"), "{}");
    write(&root.join("a/y.yml"), POLICY);
    write(&root.join("values.yaml"), "replicas: 3\n");
    write(&root.join("README.md"), "# not a manifest\n");
    // A ConfigMap volume: hidden `..data` directories and links.
    write(&root.join("..2026_12_04/c.yaml"), POLICY);
    symlink("..2026_12_04", root.join("..data")).unwrap();
    symlink("..data/c.yaml", root.join("c.yaml")).unwrap();
    // A loop through a directory link is not followed.
    symlink(".", root.join("a/again")).unwrap();
    let files = manifest_files(&[root]).unwrap();
    assert_eq!(
        names(root, &files),
        ["a/y.yml", "a/z.json", "b.yaml", "c.yaml"]
    );
    // A named file is read whatever its name.
    let readme = root.join("README.md");
    assert_eq!(manifest_files(&[&readme]).unwrap(), [readme]);
}

#[test]
fn from_paths_names_each_file_and_reports_missing_ones() {
    let d = TempDir::new("from");
    write(&d.0.join("p.yaml"), POLICY);
    let m = Manifests::from_paths(&[&d.0]).unwrap();
    assert_eq!(m.policies.len(), 1);
    let missing = d.0.join("nope.yaml");
    let e = Manifests::from_paths(&[&missing]).unwrap_err();
    assert!(
        matches!(&e, mcnet_core::Error::Io { path, .. } if path.ends_with("nope.yaml")),
        "{e:?}"
    );
}

#[test]
fn deep_trees_are_refused_not_walked() {
    let d = TempDir::new("deep");
    let mut dir = d.0.clone();
    for i in 0..mcnet_core::policy::load::MAX_MANIFEST_DEPTH + 1 {
        dir = dir.join(format!("d{i}"));
    }
    write(&dir.join("p.yaml"), POLICY);
    match manifest_files(&[&d.0]) {
        Err(mcnet_core::Error::Invalid { problems, .. }) => {
            assert_eq!(problems[0].code, Code::InputTooDeep)
        }
        other => panic!("a tree deeper than the limit was walked: {other:?}"),
    }
}
