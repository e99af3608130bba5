export {
  type AmongEntry,
  type IncrementResult,
  Leaderboard,
  type LeaderboardEntry,
  type RankedEntry,
  type SubmitResult,
} from './leaderboard.js'
export type { LeaderboardOptions, Order, Ranking, TiePolicy, UpdatePolicy } from './options.js'
