package translate

func (t *translator) translateGRPCRoutes() {}
