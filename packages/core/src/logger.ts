/** The subset of pino's interface @rp calls; pino, bunyan-style and console-backed loggers fit. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}
