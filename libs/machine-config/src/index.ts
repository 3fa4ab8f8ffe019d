export { ConfigError, configFile, fetcherSpecOf, readMachineConfig, type EngineChoices, type MachineConfig } from './machine-config.js';
