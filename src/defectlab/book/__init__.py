"""The defect book: what each defect class is, when it makes an item defective, and example images; versioned."""

from defectlab.book.entries import (
    EXAMPLE_ROLES,
    add_example,
    decision_rules,
    entry_history,
    read_book,
    read_entry,
    remove_example,
    update_entry,
)

__all__ = ["EXAMPLE_ROLES", "add_example", "decision_rules", "entry_history", "read_book", "read_entry", "remove_example",
           "update_entry"]
