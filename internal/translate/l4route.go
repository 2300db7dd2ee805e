package translate

func (t *translator) translateL4Routes() {}
