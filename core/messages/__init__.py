"""Messages: templates and selection, the library, the guards (guards, contacts, injection, textfold),
prompts, the personalisation pipeline, quality review, approvals and exports."""
