package flow

import (
	"errors"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// maxTemplatesPerExporter bounds one exporter's templates over all its
// observation domains: a router has a few dozen.
const maxTemplatesPerExporter = 4096

var errTooManyTemplates = errors.New("too many templates for one exporter")

// templateKey is goflow2's key: version, observation domain, template ID.
func templateKey(version uint16, domain uint32, id uint16) uint64 {
	return uint64(version)<<48 | uint64(domain)<<16 | uint64(id)
}

type templateEntry struct {
	template any           // netflow.TemplateRecord, NFv9OptionsTemplateRecord or IPFIXOptionsTemplateRecord
	fast     *fastTemplate // its compiled layout; nil: left to goflow2
	added    time.Time
}

// templateCache is one exporter's templates. It implements goflow2's
// netflow.NetFlowTemplateSystem; the caller holds the exporter's lock
// and sets now before each datagram, so it needs no lock of its own.
type templateCache struct {
	ttl       time.Duration
	now       time.Time
	templates map[uint64]templateEntry
}

var _ netflow.NetFlowTemplateSystem = (*templateCache)(nil)

// AddTemplate stores t. An IPFIX template with no field withdraws the ID
// (RFC 7011 §8.1). A template whose records would take no byte is
// refused: goflow2's DecodeDataSet would loop on it forever
// (decoders/netflow/netflow.go, DecodeDataSet: `for payload.Len() >=
// listFieldsSize`).
func (c *templateCache) AddTemplate(version uint16, domain uint32, id uint16, t any) error {
	key := templateKey(version, domain, id)
	if tr, ok := t.(netflow.TemplateRecord); ok && len(tr.Fields) == 0 {
		delete(c.templates, key)
		return nil
	}
	if !consumes(t) {
		return errors.New("template whose records have no length")
	}
	if _, ok := c.templates[key]; !ok && len(c.templates) >= maxTemplatesPerExporter {
		return errTooManyTemplates
	}
	c.templates[key] = templateEntry{template: t, fast: compileTemplate(t), added: c.now}
	return nil
}

// consumes tells whether each record of template t takes at least one
// byte: a fixed length above 0 or a variable-length field.
func consumes(t any) bool {
	var fields [][]netflow.Field
	switch t := t.(type) {
	case netflow.TemplateRecord:
		fields = [][]netflow.Field{t.Fields}
	case netflow.NFv9OptionsTemplateRecord:
		fields = [][]netflow.Field{t.Scopes, t.Options}
	case netflow.IPFIXOptionsTemplateRecord:
		fields = [][]netflow.Field{t.Scopes, t.Options}
	default:
		return false
	}
	for _, fs := range fields {
		for _, f := range fs {
			if f.Length > 0 {
				return true
			}
		}
	}
	return false
}

// GetTemplate returns the template, or netflow.ErrorTemplateNotFound when
// it is unknown or older than the TTL.
func (c *templateCache) GetTemplate(version uint16, domain uint32, id uint16) (any, error) {
	key := templateKey(version, domain, id)
	e, ok := c.templates[key]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	if c.now.Sub(e.added) > c.ttl {
		delete(c.templates, key)
		return nil, netflow.ErrorTemplateNotFound
	}
	return e.template, nil
}

// fast returns the compiled layout of a template as GetTemplate would
// find it, without boxing it in an interface: known is false when
// GetTemplate would return netflow.ErrorTemplateNotFound, and the layout
// is nil when the fast path leaves the template to goflow2.
func (c *templateCache) fast(version uint16, domain uint32, id uint16) (t *fastTemplate, known bool) {
	key := templateKey(version, domain, id)
	e, ok := c.templates[key]
	if !ok {
		return nil, false
	}
	if c.now.Sub(e.added) > c.ttl {
		delete(c.templates, key)
		return nil, false
	}
	return e.fast, true
}

// RemoveTemplate deletes a template.
func (c *templateCache) RemoveTemplate(version uint16, domain uint32, id uint16) (any, error) {
	key := templateKey(version, domain, id)
	e, ok := c.templates[key]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	delete(c.templates, key)
	return e.template, nil
}

// GetTemplates returns a copy of the templates.
func (c *templateCache) GetTemplates() netflow.FlowBaseTemplateSet {
	out := make(netflow.FlowBaseTemplateSet, len(c.templates))
	for k, e := range c.templates {
		out[k] = e.template
	}
	return out
}

// live tells whether any template is younger than the TTL at now.
func (c *templateCache) live(now time.Time) bool {
	for _, e := range c.templates {
		if now.Sub(e.added) <= c.ttl {
			return true
		}
	}
	return false
}
