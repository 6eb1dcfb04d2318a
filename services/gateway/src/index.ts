export { gatewayModule } from './main.js';
