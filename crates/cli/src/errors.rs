//! Error messages of the binary: library errors name settings and files in their own terms; this module maps
//! settings to the flags that set them and prints a cause chain without saying anything twice.

/// The `train` flag that sets a `TrainConfig` field (as named by `train::Error::Setting`).
pub fn flag_of(setting: &str) -> String {
    let field = match setting {
        "fractional_epochs" => "epochs",
        // Settings without a flag of their own (config files only) keep their config.json name.
        s if s.starts_with("muon.") => return format!("config setting {s}"),
        s => s.strip_prefix("augment.").unwrap_or(s),
    };
    format!("--{}", field.replace('_', "-"))
}

/// A `train` error for the command line: a bad setting names its flag (`--lr: expected ...`).
pub fn train_flag_error(e: train::Error) -> anyhow::Error {
    match e {
        train::Error::Setting { setting, message } => {
            anyhow::anyhow!("{}: {message}", flag_of(setting))
        }
        other => other.into(),
    }
}

/// `error: ...` text of an error and its causes in one paragraph (see `cifar_types::error_text::one_paragraph`).
pub fn message(e: &anyhow::Error) -> String {
    cifar_types::error_text::one_paragraph(e.chain().map(|c| c.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn settings_map_to_flags() {
        assert_eq!(flag_of("lr"), "--lr");
        assert_eq!(flag_of("batch_size"), "--batch-size");
        assert_eq!(flag_of("augment.flip_prob"), "--flip-prob");
        assert_eq!(flag_of("fractional_epochs"), "--epochs");
        assert_eq!(flag_of("muon.ns_steps"), "config setting muon.ns_steps");
        let e = train::TrainConfig {
            lr: -1.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            train_flag_error(e)
                .to_string()
                .starts_with("--lr: expected a positive number")
        );
    }

    #[test]
    fn nothing_is_said_twice() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        /// Displays its source and also returns it, as many library errors do.
        #[derive(Debug)]
        struct Shows {
            source: std::io::Error,
        }
        impl std::fmt::Display for Shows {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "x.json: {}", self.source)
            }
        }
        impl std::error::Error for Shows {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.source)
            }
        }
        let e = anyhow::Error::new(Shows { source: io }).context("--run runs/a");
        assert_eq!(
            message(&e),
            "--run runs/a: x.json: No such file (os error 2)"
        );
        let e: anyhow::Result<()> = Err(anyhow::anyhow!("x.bin: not a valid file"));
        let e = e.context("--checkpoint x.bin").unwrap_err();
        assert_eq!(message(&e), "--checkpoint x.bin: not a valid file");
    }
}
