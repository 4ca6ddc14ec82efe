"""The output stage, derived from a check's values: package lists and trees
for people and shells (:mod:`.text`), JSON for tools (:mod:`.json`), why a
package is needed (:mod:`.why`), and what goes to stderr with the exit code
(:mod:`.problems`). Import what you need from the module that has it: this
package imports none of them, so a run pays only for the output it prints."""
