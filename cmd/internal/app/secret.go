package app

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secret is a configuration value that should not live in the YAML file.
// It is written in one of three forms:
//
//	token: ${SLOBRIDGE_ADMIN_TOKEN}        # from the environment
//	token: {env: SLOBRIDGE_ADMIN_TOKEN}    # the same, spelled out
//	token: {file: /run/secrets/admin}      # from a file (trailing newlines trimmed)
//	token: "literal"                       # in the YAML itself: development only
//
// Load resolves every Secret; a named variable that is unset, or a file
// that cannot be read, is a configuration error naming the key.
type Secret struct {
	// Env names the environment variable holding the value.
	Env string `yaml:"env"`
	// File is the path of a file holding the value.
	File string `yaml:"file"`
	// literal is the value written in the YAML itself.
	literal string
	// value is the resolved value.
	value string
	// set records that the key was present in the YAML.
	set bool
	// inYAML records a literal value written in the YAML file itself.
	inYAML bool
}

// envRef matches a whole scalar of the form ${NAME}.
var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	*s = Secret{set: true}
	switch n.Kind {
	case yaml.ScalarNode:
		if m := envRef.FindStringSubmatch(n.Value); m != nil {
			s.Env = m[1]
			return nil
		}
		s.literal = n.Value
		s.inYAML = true
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: secret field %q must be a string", v.Line, k.Value)
			}
			switch k.Value {
			case "env":
				s.Env = v.Value
			case "file":
				s.File = v.Value
			default:
				return fmt.Errorf("line %d: unknown secret field %q (use env or file)", k.Line, k.Value)
			}
		}
		if (s.Env == "") == (s.File == "") {
			return fmt.Errorf("line %d: a secret needs exactly one of env and file", n.Line)
		}
		return nil
	}
	return fmt.Errorf("line %d: a secret is a string, ${ENV}, {env: NAME} or {file: PATH}", n.Line)
}

// MarshalYAML implements yaml.Marshaler; it never writes a resolved or
// literal value.
func (s Secret) MarshalYAML() (any, error) {
	switch {
	case s.Env != "":
		return map[string]string{"env": s.Env}, nil
	case s.File != "":
		return map[string]string{"file": s.File}, nil
	case s.set:
		return "(redacted)", nil
	}
	return nil, nil
}

// Value returns the resolved secret ("" when not configured).
func (s Secret) Value() string { return s.value }

// IsSet reports whether the key was present in the configuration.
func (s Secret) IsSet() bool { return s.set }

// String redacts the value so that a Secret printed by mistake leaks
// nothing.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return "(redacted)"
}

// LiteralSecret returns a Secret holding v, for configurations built in
// code (tests, the demo).
func LiteralSecret(v string) Secret { return Secret{literal: v, value: v, set: true} }

// resolve reads the secret from its source.
func (s *Secret) resolve(lookup func(string) (string, bool)) error {
	switch {
	case !s.set:
		return nil
	case s.Env != "":
		v, ok := lookup(s.Env)
		if !ok {
			return fmt.Errorf("environment variable %s is not set", s.Env)
		}
		if v == "" {
			return fmt.Errorf("environment variable %s is empty", s.Env)
		}
		s.value = v
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return fmt.Errorf("read secret file: %w", err)
		}
		s.value = strings.TrimRight(string(b), "\r\n")
		if s.value == "" {
			return fmt.Errorf("secret file %s is empty", s.File)
		}
	default:
		s.value = s.literal
	}
	return nil
}
