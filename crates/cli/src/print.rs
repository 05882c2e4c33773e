//! `ksw print EXPR`: one C expression over the kernel's globals, printed
//! with its type as drgn prints an object, or as JSON.

use anyhow::{Context, Result};
use ksw_analyze::expr::{Evaluator, render};

use crate::flags::PrintArgs;
use crate::inputs::{InputPaths, with_inputs};

pub(crate) fn run(args: &PrintArgs) -> Result<String> {
    let paths = InputPaths::new(&args.dump, &args.vmcoreinfo, &args.debug, args.json);
    with_inputs(&paths, |inputs| {
        let ev = Evaluator::new(inputs.model);
        let object = ev
            .evaluate(&args.expression)
            .with_context(|| format!("ksw print '{}'", args.expression))?;
        let shown = render::render(&ev, &object)
            .with_context(|| format!("ksw print '{}'", args.expression))?;
        Ok(if args.json {
            let mut v = serde_json::to_value(&shown)?;
            v["expression"] = args.expression.clone().into();
            format!("{v}\n")
        } else {
            format!("{}\n", shown.to_text())
        })
    })
}
