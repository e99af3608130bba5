export type { CustomCycle, Cycle, CycleName, CycleWindow } from './cycles.js'
export {
  type AmongEntry,
  type IncrementResult,
  Leaderboard,
  type LeaderboardEntry,
  type RankedEntry,
  type SubmitResult,
} from './leaderboard.js'
export type { LeaderboardOptions, Order, Ranking, TiePolicy, UpdatePolicy } from './options.js'
export { PeriodicLeaderboard, type PeriodicLeaderboardOptions } from './periodic.js'
