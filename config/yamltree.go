package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/veloflux/veloflux/internal/pace"
)

// simpleTree returns the value yaml.v3 decodes n into when given an `any`, with every
// mapping's keys as strings, for the documents configuration files are made of: mappings
// whose keys are plain or quoted text, lists, and scalars whose type the parser resolved
// (text, numbers, booleans, null). It reports false for anything else (an anchor used by an
// alias, a merge key, an explicit tag other than !!str, a key that is not text, a key written
// twice), and the caller decodes the document with yaml.v3 as before, which gives that case
// its exact value or error.
//
// It exists for speed: yaml.v3 decodes into `any` through reflection, a third of a
// 10,000-backend file's parse; text is most of such a file, and is taken here as the parser
// left it. Every other scalar is still decoded by yaml.v3 itself, one node at a time, so
// numbers and booleans read exactly as before (FuzzSimpleTree holds the two paths equal).
func simpleTree(n *yaml.Node, p *pace.Pacer) (any, bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, false
		}
		return simpleTree(n.Content[0], p)
	case yaml.ScalarNode:
		return simpleScalar(n)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			p.Step()
			v, ok := simpleTree(c, p)
			if !ok {
				return nil, false
			}
			out[i] = v
		}
		return out, true
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				return nil, false
			}
			if _, dup := out[k.Value]; dup {
				return nil, false // yaml.v3 reports it, with both lines
			}
			v, ok := simpleTree(n.Content[i+1], p)
			if !ok {
				return nil, false
			}
			out[k.Value] = v
		}
		return out, len(n.Content)%2 == 0
	}
	return nil, false // aliases, and nodes of no kind
}

// simpleScalar is simpleTree for a scalar.
func simpleScalar(n *yaml.Node) (any, bool) {
	if n.Tag == "!!str" {
		return n.Value, true // what yaml.v3 gives for text, tagged !!str or not
	}
	if n.Style&yaml.TaggedStyle != 0 {
		return nil, false // an explicit tag: yaml.v3 checks the value against it
	}
	switch n.Tag {
	case "!!null":
		return nil, true
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, false
		}
		return v, true
	}
	return nil, false // timestamps, merge keys, anything else
}
