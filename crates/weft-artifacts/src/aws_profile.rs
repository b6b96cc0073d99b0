//! S3 settings from the AWS shared files, as the AWS tools read them: the profile
//! `AWS_PROFILE` (else `default`) of the credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
//! else `~/.aws/credentials`) and of the config file (`AWS_CONFIG_FILE`, else
//! `~/.aws/config`, where a profile's section is `[profile NAME]`). The environment wins:
//! credentials come from the files only when `AWS_ACCESS_KEY_ID` is unset, the region only
//! when `AWS_REGION` and `AWS_DEFAULT_REGION` are, the endpoint only when `AWS_ENDPOINT_URL`
//! is.

use std::path::PathBuf;

/// A file's text, or `None` when it does not exist.
type Text = Option<String>;

/// The `object_store` S3 settings the shared files give, for what the environment leaves
/// unset. An `AWS_PROFILE` that neither file has is an error naming both files.
pub(crate) fn settings() -> Result<Vec<(&'static str, String)>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let home = var("HOME").map(PathBuf::from);
    let file = |variable: &str, default: &str| {
        var(variable)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|home| home.join(".aws").join(default)))
    };
    let credentials_path = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_path = file("AWS_CONFIG_FILE", "config");
    let read = |path: &Option<PathBuf>| -> Result<Text, String> {
        let Some(path) = path else { return Ok(None) };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(format!("cannot read {}: {error}", path.display())),
        }
    };
    let explicit = var("AWS_PROFILE");
    let profile = explicit.clone().unwrap_or_else(|| "default".into());
    let found = profile_settings(&profile, read(&credentials_path)?, read(&config_path)?)?;
    let Some(found) = found else {
        return match explicit {
            Some(profile) => Err(format!(
                "AWS_PROFILE is `{profile}`, a profile neither {} nor {} has",
                shown(&credentials_path),
                shown(&config_path)
            )),
            None => Ok(Vec::new()),
        };
    };
    let unset = |names: &[&str]| names.iter().all(|name| var(name).is_none());
    Ok(found
        .into_iter()
        .filter(|(key, _)| match *key {
            "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token" => {
                unset(&["AWS_ACCESS_KEY_ID"])
            }
            "aws_region" => unset(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            "aws_endpoint" => unset(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]),
            _ => true,
        })
        .collect())
}

fn shown(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or("(no home folder)".into(), |path| path.display().to_string())
}

/// The settings of `profile` in the two files' texts; `None` when neither has it.
fn profile_settings(
    profile: &str,
    credentials: Text,
    config: Text,
) -> Result<Option<Vec<(&'static str, String)>>, String> {
    let parse = |text: Option<String>, what: &str| -> Result<Option<ini::Ini>, String> {
        text.map(|text| {
            ini::Ini::load_from_str(&text)
                .map_err(|e| format!("the AWS {what} file is not valid: {e}"))
        })
        .transpose()
    };
    let credentials = parse(credentials, "credentials")?;
    let config = parse(config, "config")?;
    // In the config file a profile's section is `[profile NAME]`, but `[default]` stays.
    let config_section = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    let from_credentials = credentials
        .as_ref()
        .and_then(|file| file.section(Some(profile)));
    let from_config = config
        .as_ref()
        .and_then(|file| file.section(Some(config_section.as_str())));
    if from_credentials.is_none() && from_config.is_none() {
        return Ok(None);
    }
    let mut settings = Vec::new();
    for (file_key, setting) in [
        ("aws_access_key_id", "aws_access_key_id"),
        ("aws_secret_access_key", "aws_secret_access_key"),
        ("aws_session_token", "aws_session_token"),
        ("region", "aws_region"),
        ("endpoint_url", "aws_endpoint"),
    ] {
        // The credentials file first, as the AWS tools read them.
        let value = from_credentials
            .and_then(|section| section.get(file_key))
            .or_else(|| from_config.and_then(|section| section.get(file_key)));
        if let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) {
            settings.push((setting, value.to_owned()));
        }
    }
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = default-secret

[team]
aws_access_key_id=TEAMKEY
aws_secret_access_key=team/secret+value
aws_session_token = token
";

    const CONFIG: &str = "\
[default]
region = eu-west-1

[profile team]
region = us-east-2
endpoint_url = http://127.0.0.1:9321

[profile config-only]
aws_access_key_id = CONFIGKEY
aws_secret_access_key = config-secret
region = ap-south-1
";

    fn get(settings: &[(&str, String)], key: &str) -> Option<String> {
        settings
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value.clone())
    }

    #[test]
    fn profiles_are_read_from_both_files_credentials_first() {
        let team = profile_settings("team", Some(CREDENTIALS.into()), Some(CONFIG.into()))
            .unwrap()
            .unwrap();
        assert_eq!(get(&team, "aws_access_key_id").as_deref(), Some("TEAMKEY"));
        assert_eq!(
            get(&team, "aws_secret_access_key").as_deref(),
            Some("team/secret+value")
        );
        assert_eq!(get(&team, "aws_session_token").as_deref(), Some("token"));
        assert_eq!(get(&team, "aws_region").as_deref(), Some("us-east-2"));
        assert_eq!(
            get(&team, "aws_endpoint").as_deref(),
            Some("http://127.0.0.1:9321")
        );
        let default = profile_settings("default", Some(CREDENTIALS.into()), Some(CONFIG.into()))
            .unwrap()
            .unwrap();
        assert_eq!(get(&default, "aws_region").as_deref(), Some("eu-west-1"));
        assert_eq!(get(&default, "aws_endpoint"), None);
        let config_only =
            profile_settings("config-only", Some(CREDENTIALS.into()), Some(CONFIG.into()))
                .unwrap()
                .unwrap();
        assert_eq!(
            get(&config_only, "aws_access_key_id").as_deref(),
            Some("CONFIGKEY")
        );
    }

    #[test]
    fn a_missing_profile_or_file_is_none_and_a_broken_file_an_error() {
        assert!(
            profile_settings("absent", Some(CREDENTIALS.into()), Some(CONFIG.into()))
                .unwrap()
                .is_none()
        );
        // `[team]` in the config file is not the profile `team`: there it is `[profile team]`.
        assert!(
            profile_settings("team", None, Some("[team]\nregion = x\n".into()))
                .unwrap()
                .is_none()
        );
        assert!(profile_settings("default", None, None).unwrap().is_none());
        let broken =
            profile_settings("default", Some("[default\nkey = ".into()), None).unwrap_err();
        assert!(broken.contains("credentials file is not valid"), "{broken}");
        assert!(!broken.contains("default-secret"));
    }
}
