package output

import (
	"strconv"
	"unicode/utf8"
)

// Printable returns s as a person may see it printed: s itself when it is
// non-empty valid UTF-8 made only of printable characters (strconv.IsPrint:
// letters, marks, numbers, punctuation, symbols and the ASCII space) and
// holds no '"' or '\\'; otherwise s Go-quoted (strconv.Quote), which shows
// control bytes, invalid UTF-8 and non-printing characters as escapes
// ("\x1b[2J", "\xff", "a\nb") and an empty s as "". A quoted result always
// starts with '"' and a plain one never holds a '"', so the two cannot be
// confused; either way the result is one line of valid UTF-8 with no
// control characters, and strconv.Unquote reads a quoted one back exactly.
//
// Names that come from the kernel or from users (command names, pod and
// container names) go through Printable in every human output.
func Printable(s string) string {
	if s != "" && printablePlain(s) {
		return s
	}
	return strconv.Quote(s)
}

func printablePlain(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < ' ' || c == 0x7f || c == '"' || c == '\\' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !strconv.IsPrint(r) {
			return false
		}
		i += n
	}
	return true
}
