//! The server's commands of `weft`, as a user types them: keys are created (printed once,
//! only on stdout), listed without their secrets, and revoked; outside a project nothing is
//! created and the command says where it looked.

use crate::common::Project;

#[test]
fn keys_are_created_listed_and_revoked() {
    let project = Project::new();
    // A project with a run in it.
    assert_eq!(project.pipelines(&["run", "training"]).code, 0);
    let created = project.weft(&[
        "server", "keys", "create", "--role", "editor", "--name", "ci <b>",
    ]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let key = created.stdout.trim().to_owned();
    assert!(
        key.starts_with("weft_") && key.len() == 5 + 12 + 1 + 43,
        "{key}"
    );
    assert!(created.stderr.contains("shown once"), "{}", created.stderr);
    let id = &key[5..17];

    let listed = project.weft(&["server", "keys", "list"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains(id) && listed.stdout.contains("editor"),
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.contains("active"), "{}", listed.stdout);
    assert!(!listed.stdout.contains(&key[18..]), "a secret is listed");
    let json = project.weft(&["server", "keys", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(keys[0]["id"], id);
    assert!(keys[0].get("secret_hash").is_none(), "{}", json.stdout);

    // Revoked by the whole key, as a user may paste it.
    let revoked = project.weft(&["server", "keys", "revoke", &key]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let listed = project.weft(&["server", "keys", "list"]);
    assert!(listed.stdout.contains("revoked"), "{}", listed.stdout);

    for (args, says) in [
        (
            vec!["server", "keys", "create", "--role", "admin"],
            "not a role",
        ),
        (
            vec!["server", "keys", "revoke", "000000000000"],
            "no API key matches",
        ),
        (vec!["server", "--address", "nowhere"], "not an address"),
        (
            vec!["ui", "--address", "0.0.0.0:0", "--no-browser"],
            "loopback",
        ),
    ] {
        let refused = project.weft(&args);
        assert_ne!(refused.code, 0, "{args:?}");
        assert!(
            refused.stderr.contains(says),
            "{args:?}: {}",
            refused.stderr
        );
    }
}

#[test]
fn outside_a_project_nothing_is_created() {
    let folder = tempfile::tempdir().unwrap();
    let project = Project::new();
    for args in [
        vec!["server", "keys", "create", "--role", "viewer"],
        vec!["ui", "--no-browser"],
        vec!["server"],
    ] {
        let refused = project
            .command(crate::common::WEFT, &args)
            .current_dir(folder.path())
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("no weft project found"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_dir(folder.path()).unwrap().count(),
        0,
        "something was created"
    );
}
