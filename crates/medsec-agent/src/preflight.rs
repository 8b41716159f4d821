//! What `medsec agent enrol` checks on the device before it sends anything: every local input
//! of an enrolment, so that a typo fails with the one-time token still valid instead of leaving
//! a half-enrolled device in the inventory.

use std::path::Path;

use crate::Error;
use crate::agent::Enrolment;
use crate::keys::KeyStore;

/// The local inputs of an enrolment, checked before anything reaches the server: the factory
/// image (a non-empty regular file), its version, the slots' folders, and a token key store's
/// module and PIN file.
pub(crate) fn check(e: &Enrolment) -> Result<(), Error> {
    let refuse = |what: String| {
        Err(Error::State(format!(
            "{what}; nothing was sent to the server and the enrolment token is still valid"
        )))
    };
    match std::fs::metadata(&e.factory_image) {
        Ok(m) if m.is_file() && m.len() > 0 => {}
        Ok(m) if m.is_file() => {
            return refuse(format!(
                "the factory image {} is empty",
                e.factory_image.display()
            ));
        }
        Ok(_) => {
            return refuse(format!(
                "the factory image {} is not a file",
                e.factory_image.display()
            ));
        }
        Err(err) => {
            return refuse(format!(
                "the factory image {}: {err}",
                e.factory_image.display()
            ));
        }
    }
    if e.factory_version.trim().is_empty() {
        return refuse("the factory version is empty".into());
    }
    if e.hardware_id.trim().is_empty() {
        return refuse("the hardware id is empty".into());
    }
    if let Some([a, b]) = &e.slots {
        if a == b {
            return refuse(format!("both slots are {}", a.display()));
        }
        for slot in [a, b] {
            let parent = slot
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return refuse(format!(
                    "the folder of slot {} does not exist",
                    slot.display()
                ));
            }
        }
    }
    if let KeyStore::Pkcs11 {
        module, pin_file, ..
    } = &e.key_store
    {
        if !module.is_file() {
            return refuse(format!(
                "the PKCS#11 module {} does not exist",
                module.display()
            ));
        }
        if let Err(err) = std::fs::read(pin_file) {
            return refuse(format!(
                "the PKCS#11 PIN file {}: {err}",
                pin_file.display()
            ));
        }
    }
    Ok(())
}
