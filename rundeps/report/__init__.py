"""The output stage: package lists and trees for people and shells
(:mod:`.text`), JSON for tools (:mod:`.json`), and what goes to stderr with
the exit code (:mod:`.problems`), all derived from a check's values."""

from .json import binding_json, explain_file_json, explain_json, json_name, to_json_dict, wheel_json
from .problems import Problem, exit_code, problems, sorted_faults, will_not_load_lines
from .text import FORMATS, explain, explain_file, render, so_names, tree_lines
from .why import why_package

__all__ = ["FORMATS", "render", "so_names", "tree_lines", "explain", "explain_file", "why_package", "json_name",
           "to_json_dict", "binding_json", "explain_file_json", "explain_json", "wheel_json", "Problem",
           "problems", "exit_code", "sorted_faults", "will_not_load_lines"]
