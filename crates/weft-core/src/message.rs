//! How an error and its causes read as one message.
//!
//! Errors often repeat their source in their own text (`cannot open X: file is not a
//! database`, whose source is `file is not a database`), so printing every cause after its
//! parent says the same thing twice or three times. [`chain`] keeps a cause only when its
//! parent's text does not already hold it.

/// The causes of an error, outermost first, without those their parent already says.
pub fn chain<I, S>(causes: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: ToString,
{
    let mut kept: Vec<String> = Vec::new();
    for cause in causes {
        let cause = cause.to_string();
        // SQLite's lowest-level error repeats its message behind its code.
        let text = without_code(cause.trim());
        let said = kept.last().is_some_and(|parent| parent.contains(text));
        if !said && !cause.trim().is_empty() {
            kept.push(cause);
        }
    }
    kept
}

/// `text` without a leading `Error code 26: `.
fn without_code(text: &str) -> &str {
    text.strip_prefix("Error code ")
        .and_then(|rest| rest.split_once(": "))
        .filter(|(code, _)| !code.is_empty() && code.bytes().all(|byte| byte.is_ascii_digit()))
        .map_or(text, |(_, message)| message)
}

/// The causes as one line, joined with `: ` (see [`chain`]).
pub fn one_line<I, S>(causes: I) -> String
where
    I: IntoIterator<Item = S>,
    S: ToString,
{
    chain(causes).join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_its_parent_already_says_is_said_once() {
        assert_eq!(
            one_line([
                "cannot open the metadata store at weft.db: file is not a database",
                "file is not a database",
                "file is not a database",
            ]),
            "cannot open the metadata store at weft.db: file is not a database"
        );
        assert_eq!(
            one_line([
                "cannot load `model`",
                "No such file or directory (os error 2)"
            ]),
            "cannot load `model`: No such file or directory (os error 2)"
        );
        assert_eq!(one_line(["cached", "cached"]), "cached");
        assert_eq!(
            one_line([
                "cannot open weft.db: file is not a database",
                "Error code 26: file is not a database",
            ]),
            "cannot open weft.db: file is not a database"
        );
        assert_eq!(
            one_line([
                "cannot open weft.db",
                "Error code 14: unable to open database file"
            ]),
            "cannot open weft.db: Error code 14: unable to open database file"
        );
        assert_eq!(one_line(Vec::<String>::new()), "");
    }
}
