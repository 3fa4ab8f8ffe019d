/** Nest injection tokens of the worker-agent (the bus is service-kit's BUS). */
export const AGENT_CONFIG = Symbol('AGENT_CONFIG');
export const BUILDER = Symbol('BUILDER');
