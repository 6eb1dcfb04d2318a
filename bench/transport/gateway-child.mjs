// Runs the gateway alone in this process (so the benchmark can read its peak RSS); prints its port.
import { hostService } from '@fedmm/service-kit';
import { gatewayModule } from '@fedmm/gateway-service';

const svc = await hostService(gatewayModule, process.env);
process.stdout.write(`PORT ${svc.port}\n`);
process.on('SIGTERM', () => void svc.stop().then(() => process.exit(0)));
