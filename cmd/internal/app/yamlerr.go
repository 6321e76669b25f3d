package app

import (
	"fmt"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// yamlLine finds the "line N:" prefixes of yaml.v3 errors.
var yamlLine = regexp.MustCompile(`line (\d+): `)

// annotateYAMLError adds the key path to each "line N:" of a yaml.v3
// decode error, so that "cannot unmarshal !!str `soon` into
// time.Duration" says it is delivery.attempt_timeout.
func annotateYAMLError(doc []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return err
	}
	paths := map[int]string{}
	walkYAML(&root, "", paths)
	msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		if p, ok := paths[n]; ok {
			return fmt.Sprintf("line %d (%s): ", n, p)
		}
		return m
	})
	return fmt.Errorf("config: %s", msg)
}

// walkYAML records, for each line holding a mapping key or a value, the
// dotted path of that key.
func walkYAML(n *yaml.Node, path string, out map[int]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkYAML(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if _, seen := out[k.Line]; !seen {
				out[k.Line] = p
			}
			walkYAML(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkYAML(c, fmt.Sprintf("%s[%d]", path, i), out)
		}
	case yaml.ScalarNode:
		if _, seen := out[n.Line]; !seen && path != "" {
			out[n.Line] = path
		}
	}
}
