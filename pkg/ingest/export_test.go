package ingest

// ErrKill, wrapped by a hook's error, makes the ingestor abandon its batch as a killed process
// would: no ack, no nak, Run returns.
var ErrKill = errAbandon

// SetHooks installs functions called with the external ids (or status references) of each batch
// just before its commit and just after it.
func SetHooks(in *Ingestor, beforeCommit, afterCommit func(ids []string) error) {
	wrap := func(f func([]string) error) func([]*item) error {
		if f == nil {
			return nil
		}
		return func(items []*item) error {
			ids := make([]string, 0, len(items))
			for _, it := range items {
				switch {
				case it.inbound != nil:
					ids = append(ids, it.inbound.ExternalID)
				case it.status != nil:
					ids = append(ids, it.status.ExternalID)
				}
			}
			return f(ids)
		}
	}
	in.hooks = hooks{beforeCommit: wrap(beforeCommit), afterCommit: wrap(afterCommit)}
}
