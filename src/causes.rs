//! An error told with the errors that caused it, for messages where the
//! outer error alone says too little (an HTTP or Socket.IO client's
//! "error sending request" for a refused connection or a bad certificate).

/// `e`, then each cause down to the first, joined by `: `; a cause whose
/// text the message already holds is not repeated.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn each_cause_is_told_once_outermost_first() {
        let e = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "tcp connect error: refused",
                Some(Box::new(Layer("refused", None))),
            ))),
        );
        assert_eq!(
            with_causes(&e),
            "error sending request: tcp connect error: refused"
        );
        assert_eq!(with_causes(&Layer("alone", None)), "alone");
    }
}
