// Package checkpoint reads and appends checkpoint files: one line per item
// done, each ending in "\n", appended by ckmark and read by ckskip.
//
// The read side (Open, Snapshot) sees a checkpoint as it was when opened: a
// writer may append while it reads, and only the complete lines present at
// that moment count. A last line without a newline was torn by a crash and is
// ignored. Lines and keys follow package lines: "\r\n" endings, a UTF-8 BOM at
// the start and spaces, tabs or carriage returns around a key do not matter,
// and blank lines are skipped. The append side (OpenAppender) saves a torn
// last line to CHECKPOINT.torn before it cuts it off.
package checkpoint
