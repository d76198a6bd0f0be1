package tcpclosetrace

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// docFiles are the Markdown files whose links are checked: the README,
// every page of docs/, and the READMEs of deploy/.
func docFiles(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no docs/*.md")
	}
	return append([]string{"README.md"}, append(pages, "deploy/README.md", "deploy/kubernetes/README.md")...)
}

var (
	// mdLink matches an inline link or image: [text](target) or
	// [text](target "title"); the target is captured.
	mdLink = regexp.MustCompile(`\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// codeSpan matches inline code, whose brackets are not links.
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// prose returns the lines of a Markdown document outside fenced code blocks.
func prose(doc string) []string {
	var out []string
	fence := ""
	for _, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case fence != "":
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
		case strings.HasPrefix(trimmed, "```"), strings.HasPrefix(trimmed, "~~~"):
			fence = trimmed[:3]
		default:
			out = append(out, line)
		}
	}
	return out
}

// links returns the targets of the inline links of a Markdown document,
// leaving out code blocks and code spans.
func links(doc string) []string {
	var out []string
	for _, line := range prose(doc) {
		line = codeSpan.ReplaceAllString(line, "")
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// slug is the anchor GitHub gives a heading: the text as rendered
// (code spans without backticks, links as their text), lower-cased, with
// everything but letters, digits, spaces, '-' and '_' removed, and spaces
// made '-'.
func slug(text string) string {
	text = mdLink.ReplaceAllStringFunc(text, func(l string) string {
		return l[1:strings.Index(l, "](")]
	})
	text = strings.NewReplacer("`", "", "**", "", "__", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// anchors returns the anchors of a Markdown document's headings, with
// GitHub's -1, -2, ... suffixes on repeated ones.
func anchors(doc string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range prose(doc) {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func TestSlug(t *testing.T) {
	tests := []struct{ heading, want string }{
		{"Quick start", "quick-start"},
		{"JSON schema (`-o json`)", "json-schema--o-json"},
		{"Call-site stacks (`--stacks`)", "call-site-stacks---stacks"},
		{"Per-owner series (`--metrics.by-comm`, `--metrics.by-pod`)", "per-owner-series---metricsby-comm---metricsby-pod"},
		{"What `make test` does", "what-make-test-does"},
		{"Pod attribution: reading an event", "pod-attribution-reading-an-event"},
		{"See [the page](docs/x.md)", "see-the-page"},
	}
	for _, tt := range tests {
		if got := slug(tt.heading); got != tt.want {
			t.Errorf("slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
}

func TestLinksIgnoreCode(t *testing.T) {
	doc := "a [x](one.md) `[y](two.md)`\n```\n[z](three.md)\n```\n[w](four.md#a \"title\")\n"
	got := links(doc)
	want := []string{"one.md", "four.md#a"}
	if !slices.Equal(got, want) {
		t.Errorf("links = %q, want %q", got, want)
	}
}

// TestDocLinks: every relative link in the README and docs/ names a file
// or directory of the repository, and its anchor, if any, a heading of
// the Markdown file it points to.
func TestDocLinks(t *testing.T) {
	cache := map[string]map[string]bool{}
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := cache[path]; ok {
			return a, nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cache[path] = anchors(string(src))
		return cache[path], nil
	}
	checked := 0
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range links(string(src)) {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			path, anchor, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				if filepath.IsAbs(path) {
					t.Errorf("%s: link %q: not relative", file, target)
					continue
				}
				dest = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %q: %v", file, target, err)
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			a, err := anchorsOf(dest)
			if err != nil {
				t.Errorf("%s: link %q: %v", file, target, err)
				continue
			}
			if !a[anchor] {
				t.Errorf("%s: link %q: %s has no heading with anchor #%s", file, target, dest, anchor)
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d links: is the link pattern still right?", checked)
	}
}

// TestReadmeLinksEveryPage: every page of docs/ is reachable from the
// README.
func TestReadmeLinksEveryPage(t *testing.T) {
	src, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, target := range links(string(src)) {
		path, _, _ := strings.Cut(target, "#")
		linked[filepath.Clean(path)] = true
	}
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range pages {
		if !linked[page] {
			t.Errorf("README.md does not link %s", page)
		}
	}
}
