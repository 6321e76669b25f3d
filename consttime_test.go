package slobridge

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches the names of values that are secrets or compared
// against secrets: tokens, client secrets, passwords, CSRF values, MACs,
// Authorization headers.
var secretName = regexp.MustCompile(`(?i)(secret|token|password|passwd|csrf|mac|authorization|bearer)`)

// TestSecretsAreComparedInConstantTime reads every non-test Go file of the
// module and fails on an == or != whose operands name a secret, unless
// the other operand is a literal or nil (an emptiness check): secrets are
// compared with crypto/subtle or hmac.Equal, so that the time a
// comparison takes tells an attacker nothing.
func TestSecretsAreComparedInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	var files []*ast.File
	consts := map[string]bool{} // constants of the module: names, not secrets
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.CONST {
				for _, spec := range gd.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						consts[n.Name] = true
					}
				}
			}
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("read only %d files", len(files))
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			be, ok := n.(*ast.BinaryExpr)
			if !ok || (be.Op != token.EQL && be.Op != token.NEQ) {
				return true
			}
			if trivial(be.X, consts) || trivial(be.Y, consts) {
				return true
			}
			if name := secretOperand(be.X, consts) + secretOperand(be.Y, consts); name != "" {
				t.Errorf("%s: %s compared with %s; use crypto/subtle.ConstantTimeCompare", fset.Position(be.Pos()), name, be.Op)
			}
			return true
		})
	}
}

// trivial reports a literal, nil, a constant of the module or a len(...)
// call: comparing with those is a check of a kind or of emptiness, not of
// a secret.
func trivial(e ast.Expr, consts map[string]bool) bool {
	switch v := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return v.Name == "nil" || v.Name == "true" || v.Name == "false" || consts[v.Name]
	case *ast.SelectorExpr:
		return consts[v.Sel.Name]
	case *ast.CallExpr:
		if id, ok := v.Fun.(*ast.Ident); ok && id.Name == "len" {
			return true
		}
	}
	return false
}

// secretOperand returns the secret-looking name an operand ends in, "" for
// none. The module's constants (grant types, error codes, methods) are
// names, not secrets.
func secretOperand(e ast.Expr, consts map[string]bool) string {
	var name string
	switch v := e.(type) {
	case *ast.Ident:
		name = v.Name
	case *ast.SelectorExpr:
		name = v.Sel.Name
	case *ast.CallExpr:
		if sel, ok := v.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Get" && len(v.Args) == 1 {
			if lit, ok := v.Args[0].(*ast.BasicLit); ok && secretName.MatchString(lit.Value) {
				return lit.Value
			}
		}
		return ""
	default:
		return ""
	}
	if secretName.MatchString(name) && !consts[name] {
		return name
	}
	return ""
}
