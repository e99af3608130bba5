import { defineConfig } from 'tsdown'
import { packageBuild } from '../../tsdown.config.ts'

export default defineConfig(
  packageBuild([
    'src/index.ts',
    'src/middleware/express.ts',
    'src/middleware/fastify.ts',
    'src/middleware/hono.ts',
  ]),
)
