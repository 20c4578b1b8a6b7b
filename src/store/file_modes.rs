//! Who may read what stile keeps on disk: the data directory is created 0700, and the
//! data file and its backups are 0600 (created so, or narrowed at start), whatever the
//! umask says. Endpoint secrets and payloads are sealed inside them too, but a copy
//! nobody else can read is the first line.

use std::path::Path;

/// Creates `dir` (and its missing parents) for the owner only; a directory that exists
/// keeps its mode (the files in it are owner-only anyway).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes `path` readable and writable by its owner only: creates it empty so if it does
/// not exist (redb then writes a new database into it), narrows it if others may read it.
pub fn make_owner_only(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}

/// Creates `path`, which must not exist, empty and owner-only, for writing (a backup).
pub fn create_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_the_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/data");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let file = dir.join("stile.redb");
        make_owner_only(&file).unwrap();
        assert_eq!((mode(&file), std::fs::metadata(&file).unwrap().len()), (0o600, 0));
        std::fs::write(&file, b"data").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        make_owner_only(&file).unwrap();
        assert_eq!(mode(&file), 0o600, "narrowed");
        assert_eq!(std::fs::read(&file).unwrap(), b"data", "kept");

        let backup = dir.join("backup.redb");
        create_owner_only(&backup).unwrap();
        assert_eq!(mode(&backup), 0o600);
        assert!(create_owner_only(&backup).is_err(), "never replaces a file");
    }
}
